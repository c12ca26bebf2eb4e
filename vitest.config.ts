import { defineConfig } from 'vitest/config';

/**
 * Integration files that must have the machine to themselves: they run after
 * every other file, one at a time. They measure time or memory, load the
 * machine on purpose, count requests in time windows, or change the network
 * (namespaces, bridges).
 */
const EXCLUSIVE = [
  'test/chaos.test.ts',
  'test/continuous-failover.test.ts',
  'test/layout-hosts.test.ts',
  'test/memory.test.ts',
  'test/netns.test.ts',
  'test/nginx.test.ts',
  'test/rate-limit.test.ts',
  'test/several-hosts.test.ts',
];

/** Real processes on real ports: generous timeouts. */
const integration = {
  globalSetup: ['test/global-setup.ts'],
  testTimeout: 120_000,
  hookTimeout: 60_000,
};

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['{gateway,storage-node,worker,shared,scripts}/**/*.test.ts'],
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        // Each file's cluster has its own ports, directories, database and
        // CLUSTER_NAME (its Redis keys and RabbitMQ queues): two files at once.
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          exclude: EXCLUSIVE,
          ...integration,
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'integration-exclusive',
          include: EXCLUSIVE,
          ...integration,
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
