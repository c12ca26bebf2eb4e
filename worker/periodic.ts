/**
 * The worker's periodic tasks (node-cron): never two runs of one task at
 * once, and a failed run is logged and left to the next one, never thrown.
 * Each run has a request id of its own, shared by the jobs it queues.
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from '../shared/logger.js';
import { newRequestId, runWithRequestId } from '../shared/request-context.js';

export function every(
  schedule: string,
  name: string,
  log: Logger,
  run: () => Promise<void>,
): ScheduledTask {
  return cron.schedule(
    schedule,
    () =>
      runWithRequestId(newRequestId(), async () => {
        try {
          await run();
        } catch (err) {
          log.warn(
            { task: name, err: (err as Error).message },
            `${name} failed; the next run retries`,
          );
        }
      }),
    { name, noOverlap: true },
  );
}
