import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  loadCommonConfig,
  loadGatewayConfig,
  loadNodeConfig,
  loadWorkerConfig,
  parseBytes,
  type Env,
} from './config.js';

function configError(load: () => unknown): ConfigError {
  try {
    load();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError, but the configuration loaded');
}

describe('loadGatewayConfig', () => {
  it('has working defaults for an empty environment', () => {
    const c = loadGatewayConfig({});
    expect(c.server.port).toBe(8080);
    expect(c.nodes).toEqual([
      { id: 'node1', url: 'http://127.0.0.1:9001' },
      { id: 'node2', url: 'http://127.0.0.1:9002' },
      { id: 'node3', url: 'http://127.0.0.1:9003' },
    ]);
    expect(c.replication.replicationFactor).toBe(3);
    expect(c.replication.writeQuorum).toBe(2);
    expect(c.uploads.allowedTypes).toEqual(['image/*']);
    expect(c.uploads.maxUploadBytes).toBe(1024 ** 3);
    expect(c.urls.trustProxy).toBe(false);
    expect(c.storageDir).toBe(resolve('storage'));
    expect(c.dbPath).toBe(resolve('storage/trove.db'));
  });

  it('has the S3 API off by default, and validates its settings', () => {
    const off = loadGatewayConfig({});
    expect(off.s3).toEqual({
      s3Port: undefined,
      s3Host: '0.0.0.0',
      s3Region: 'us-east-1',
      s3Domain: undefined,
      s3CompleteKeepaliveMs: 5000,
    });
    const on = loadGatewayConfig({
      S3_PORT: '9000',
      HOST: '127.0.0.1',
      S3_DOMAIN: 'S3.Example.com.',
    });
    expect(on.s3).toMatchObject({ s3Port: 9000, s3Host: '127.0.0.1', s3Domain: 's3.example.com' });
    expect(configError(() => loadGatewayConfig({ S3_PORT: '8080' })).message).toMatch(/S3_PORT/);
    expect(configError(() => loadGatewayConfig({ S3_REGION: 'US East' })).message).toMatch(
      /S3_REGION/,
    );
  });

  it('treats empty strings as unset', () => {
    expect(loadGatewayConfig({ PORT: '', WRITE_QUORUM: '' }).server.port).toBe(8080);
  });

  it('reads explicit values', () => {
    const c = loadGatewayConfig({
      PORT: '3000',
      NODES: 'a=http://h1:1/, b=http://h2:2',
      REPLICATION_FACTOR: '2',
      WRITE_QUORUM: '1',
      MAX_UPLOAD_BYTES: '100MB',
      ALLOWED_TYPES: 'image/*, Application/PDF',
      TRUST_PROXY: 'yes',
    });
    expect(c.server.port).toBe(3000);
    expect(c.nodes).toEqual([
      { id: 'a', url: 'http://h1:1' },
      { id: 'b', url: 'http://h2:2' },
    ]);
    expect(c.replication.writeQuorum).toBe(1);
    expect(c.uploads.maxUploadBytes).toBe(100_000_000);
    expect(c.uploads.allowedTypes).toEqual(['image/*', 'application/pdf']);
    expect(c.urls.trustProxy).toBe(true);
  });

  const bad: [Env, string][] = [
    [{ PORT: 'abc' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ WRITE_QUORUM: '4' }, 'WRITE_QUORUM'],
    [{ NODES: 'garbage' }, 'NODES'],
    [{ NODES: 'a=http://h:1,a=http://h:2' }, 'NODES'],
    [{ NODES: 'a=ftp://h:1' }, 'NODES'],
    [{ MAX_UPLOAD_BYTES: 'lots' }, 'MAX_UPLOAD_BYTES'],
    [{ MAX_UPLOAD_BYTES: '0' }, 'MAX_UPLOAD_BYTES'],
    [{ TRUST_PROXY: 'maybe' }, 'TRUST_PROXY'],
    [{ ALLOWED_TYPES: 'jpeg' }, 'ALLOWED_TYPES'],
    [{ REPLICATION_FACTOR: '4' }, 'REPLICATION_FACTOR'],
    [{ PUBLIC_URL: 'example.com' }, 'PUBLIC_URL'],
    [{ MAX_INPUT_PIXELS: '0' }, 'MAX_INPUT_PIXELS'],
    [{ PROCESS_CONCURRENCY: 'many' }, 'PROCESS_CONCURRENCY'],
    [{ MAX_BATCH_FILES: '0' }, 'MAX_BATCH_FILES'],
    [{ MAX_BATCH_BYTES: 'lots' }, 'MAX_BATCH_BYTES'],
  ];
  for (const [env, variable] of bad) {
    it(`names ${variable} when it is ${JSON.stringify(Object.values(env)[0])}`, () => {
      const err = configError(() => loadGatewayConfig(env));
      expect(err.problems).toHaveLength(1);
      expect(err.problems[0]!.startsWith(`${variable}:`)).toBe(true);
      expect(err.message).toContain(variable);
    });
  }

  it('has image processing settings: a slot per core by default', () => {
    expect(loadGatewayConfig({}).processing).toMatchObject({
      maxInputPixels: 50_000_000,
      processConcurrency: availableParallelism(),
      maxBatchFiles: 20,
      maxBatchBytes: 256 * 1024 ** 2,
    });
    const c = loadGatewayConfig({ PROCESS_CONCURRENCY: '3', MAX_BATCH_BYTES: '10MB' }).processing;
    expect([c.processConcurrency, c.maxBatchBytes]).toEqual([3, 10_000_000]);
  });

  it('bounds /process and /batch bodies: 30 s plus 1 s per 1000 bytes, and the spool they fill', () => {
    expect(loadGatewayConfig({ PROCESS_CONCURRENCY: '2' }).processing).toMatchObject({
      bodyTimeoutSeconds: 30,
      bodyMinRate: 1000,
      // What PROCESS_CONCURRENCY requests could spool when each held its slot from its first byte.
      processSpoolBytes: 2 * 1024 ** 3,
    });
    const c = loadGatewayConfig({
      BODY_TIMEOUT_SECONDS: '5',
      BODY_MIN_RATE: '10KB',
      PROCESS_SPOOL_BYTES: '500MB',
    }).processing;
    expect([c.bodyTimeoutSeconds, c.bodyMinRate, c.processSpoolBytes]).toEqual([
      5, 10_000, 500_000_000,
    ]);
    for (const [variable, value] of [
      ['BODY_TIMEOUT_SECONDS', '0'],
      ['BODY_MIN_RATE', 'slow'],
      ['PROCESS_SPOOL_BYTES', '0'],
    ] as const) {
      const err = configError(() => loadGatewayConfig({ [variable]: value }));
      expect(err.problems).toEqual([expect.stringMatching(new RegExp(`^${variable}:`))]);
    }
  });

  it('lists every bad variable in one error', () => {
    const err = configError(() =>
      loadGatewayConfig({
        PORT: 'abc',
        NODES: 'garbage',
        MAX_UPLOAD_BYTES: 'lots',
        TRUST_PROXY: 'maybe',
        ALLOWED_TYPES: 'jpeg',
      }),
    );
    const named = err.problems.map((p) => p.slice(0, p.indexOf(':'))).sort();
    expect(named).toEqual(['ALLOWED_TYPES', 'MAX_UPLOAD_BYTES', 'NODES', 'PORT', 'TRUST_PROXY']);
    for (const variable of named) expect(err.message).toContain(variable);
  });
});

describe('ADMIN_TOKEN', () => {
  it('is off unless set, and must be 16+ characters', () => {
    expect(loadGatewayConfig({}).auth.adminToken).toBeUndefined();
    expect(loadGatewayConfig({ ADMIN_TOKEN: '' }).auth.adminToken).toBeUndefined();
    expect(loadGatewayConfig({ ADMIN_TOKEN: '0123456789abcdef' }).auth.adminToken).toBe(
      '0123456789abcdef',
    );
    const err = configError(() => loadGatewayConfig({ ADMIN_TOKEN: 'short-token' }));
    expect(err.problems).toEqual([expect.stringMatching(/^ADMIN_TOKEN: .*16/)]);
  });
});

describe('NODE_READ_CONNECTIONS', () => {
  it('allows 128 reads in flight per node by default, and at least one', () => {
    expect(loadGatewayConfig({}).storageNodes.nodeReadConnections).toBe(128);
    expect(loadGatewayConfig({ NODE_READ_CONNECTIONS: '2' }).storageNodes.nodeReadConnections).toBe(
      2,
    );
    const err = configError(() => loadGatewayConfig({ NODE_READ_CONNECTIONS: '0' }));
    expect(err.problems).toEqual([expect.stringMatching(/^NODE_READ_CONNECTIONS: /)]);
  });
});

describe('DOWNLOAD_GRANT_TTL_SECONDS', () => {
  it('is half an hour by default, 0 turns grants off, and it is a whole number of seconds up to 30 days', () => {
    expect(loadGatewayConfig({}).downloads.downloadGrantTtlSeconds).toBe(1800);
    expect(
      loadGatewayConfig({ DOWNLOAD_GRANT_TTL_SECONDS: '0' }).downloads.downloadGrantTtlSeconds,
    ).toBe(0);
    for (const value of ['-1', '1.5', 'soon', String(30 * 24 * 3600 + 1)]) {
      const err = configError(() => loadGatewayConfig({ DOWNLOAD_GRANT_TTL_SECONDS: value }));
      expect(err.problems).toEqual([expect.stringMatching(/^DOWNLOAD_GRANT_TTL_SECONDS: /)]);
    }
  });
});

describe('RATE_LIMIT_*', () => {
  it('is on by default, with per-minute budgets', () => {
    expect(loadGatewayConfig({}).rateLimits).toEqual({
      rateLimits: true,
      rateLimitWindowSeconds: 60,
      rateLimitUploads: 120,
      rateLimitDownloads: 600,
      rateLimitMisses: 30,
    });
  });

  it('turns off as a whole or one by one, and refuses nonsense', () => {
    expect(loadGatewayConfig({ RATE_LIMITS: 'off' }).rateLimits.rateLimits).toBe(false);
    expect(loadGatewayConfig({ RATE_LIMIT_MISSES: '0' }).rateLimits.rateLimitMisses).toBe(0);
    const err = configError(() =>
      loadGatewayConfig({ RATE_LIMIT_UPLOADS: '-1', RATE_LIMIT_WINDOW_SECONDS: '0' }),
    );
    expect(err.problems.map((p) => p.split(':')[0]).sort()).toEqual([
      'RATE_LIMIT_UPLOADS',
      'RATE_LIMIT_WINDOW_SECONDS',
    ]);
  });
});

describe('AMQP_URLS', () => {
  it('is AMQP_URL alone when unset, in every process that uses RabbitMQ', () => {
    expect(loadGatewayConfig({}).amqpUrls).toEqual(['amqp://guest:guest@127.0.0.1:5672']);
    expect(
      loadWorkerConfig({ AMQP_URL: 'amqps://u:p@mq:5671/vh', AMQP_URLS: '' }).amqpUrls,
    ).toEqual(['amqps://u:p@mq:5671/vh']);
    expect(loadCommonConfig({ AMQP_URL: 'amqp://mq' }).amqpUrls).toEqual(['amqp://mq']);
  });

  it('lists the nodes in order, and wins over AMQP_URL', () => {
    const c = loadWorkerConfig({
      AMQP_URL: 'amqp://elsewhere',
      AMQP_URLS: 'amqp://u:p@mq1:5672, amqps://u:p@mq2:5671/,,amqp://u:p@mq3',
    });
    expect(c.amqpUrls).toEqual(['amqp://u:p@mq1:5672', 'amqps://u:p@mq2:5671/', 'amqp://u:p@mq3']);
  });

  it('names the variable and the bad URL, without its password', () => {
    const err = configError(() =>
      loadGatewayConfig({ AMQP_URLS: 'amqp://u:secret@mq1:5672,http://u:secret@mq2:5672' }),
    );
    expect(err.problems).toEqual([expect.stringMatching(/^AMQP_URLS: "http:\/\/mq2:5672\/" /)]);
    expect(err.message).not.toContain('secret');
    expect(configError(() => loadWorkerConfig({ AMQP_URLS: ' , ' })).problems).toEqual([
      expect.stringMatching(/^AMQP_URLS: /),
    ]);
    expect(configError(() => loadWorkerConfig({ AMQP_URLS: 'mq1:5672' })).problems).toEqual([
      expect.stringMatching(/^AMQP_URLS: "mq1:5672" /),
    ]);
  });
});

describe('AMQP_QUEUE_TYPE', () => {
  it('is classic unless quorum is asked for, and nothing else', () => {
    expect(loadGatewayConfig({}).amqpQueueType).toBe('classic');
    expect(loadWorkerConfig({ AMQP_QUEUE_TYPE: 'quorum' }).amqpQueueType).toBe('quorum');
    const err = configError(() => loadWorkerConfig({ AMQP_QUEUE_TYPE: 'stream' }));
    expect(err.problems).toEqual([expect.stringMatching(/^AMQP_QUEUE_TYPE: .*classic.*quorum/)]);
  });
});

describe('loadNodeConfig', () => {
  it('takes its id from --id and its port from NODES', () => {
    const c = loadNodeConfig({}, ['node', 'main.ts', '--id', 'node2']);
    expect(c.nodeId).toBe('node2');
    expect(c.nodePort).toBe(9002);
    expect(c.nodeHost).toBe('127.0.0.1');
    expect(c.nodeDataDir).toBe(resolve('storage/node2'));
  });

  it('prefers --id over NODE_ID, and NODE_PORT over NODES', () => {
    expect(loadNodeConfig({ NODE_ID: 'node1' }, ['--id', 'node3']).nodePort).toBe(9003);
    expect(loadNodeConfig({ NODE_ID: 'node1', NODE_PORT: '7000' }).nodePort).toBe(7000);
  });

  it('requires an id, and a port for a node missing from NODES', () => {
    expect(configError(() => loadNodeConfig({})).message).toContain('NODE_ID');
    expect(configError(() => loadNodeConfig({}, ['--id', 'node9'])).message).toContain('NODE_PORT');
    expect(configError(() => loadNodeConfig({}, ['--id', '../etc'])).message).toContain('NODE_ID');
    expect(loadNodeConfig({ NODE_PORT: '9100' }, ['--id', 'node9']).nodePort).toBe(9100);
  });
});

describe('loadWorkerConfig', () => {
  it('has image processing defaults: 50 MP, a 60 s time limit, 2 jobs at once, 3 copies', () => {
    const c = loadWorkerConfig({});
    expect(c).toMatchObject({
      maxInputPixels: 50_000_000,
      imageJobTimeoutMs: 60_000,
      imageConcurrency: 2,
      replicationFactor: 3,
      writeQuorum: 2,
    });
  });

  it('reads the image settings and refuses bad ones', () => {
    const c = loadWorkerConfig({ MAX_INPUT_PIXELS: '1000', IMAGE_JOB_TIMEOUT_SECONDS: '5' });
    expect([c.maxInputPixels, c.imageJobTimeoutMs]).toEqual([1000, 5000]);
    expect(() => loadWorkerConfig({ MAX_INPUT_PIXELS: '0' })).toThrow(/MAX_INPUT_PIXELS/);
    expect(() => loadWorkerConfig({ IMAGE_JOB_TIMEOUT_SECONDS: 'soon' })).toThrow(
      /IMAGE_JOB_TIMEOUT_SECONDS/,
    );
    expect(() => loadWorkerConfig({ REPLICATION_FACTOR: '4' })).toThrow(ConfigError);
  });
});

describe('metrics settings', () => {
  it('leaves the gateway /metrics open unless METRICS_TOKEN is set, 16+ characters', () => {
    expect(loadGatewayConfig({}).auth.metricsToken).toBeUndefined();
    expect(loadGatewayConfig({ METRICS_TOKEN: 'a'.repeat(16) }).auth.metricsToken).toBe(
      'a'.repeat(16),
    );
    expect(configError(() => loadGatewayConfig({ METRICS_TOKEN: 'short' })).message).toMatch(
      /METRICS_TOKEN/,
    );
  });

  it('serves the worker metrics on loopback:9464 by default; port 0 turns them off', () => {
    expect(loadWorkerConfig({})).toMatchObject({
      workerMetricsPort: 9464,
      workerMetricsHost: '127.0.0.1',
    });
    expect(loadWorkerConfig({ WORKER_METRICS_PORT: '0' }).workerMetricsPort).toBe(0);
    expect(
      loadWorkerConfig({ WORKER_METRICS_PORT: '9500', WORKER_METRICS_HOST: '0.0.0.0' }),
    ).toMatchObject({ workerMetricsPort: 9500, workerMetricsHost: '0.0.0.0' });
    for (const bad of ['70000', '-1', 'http'])
      expect(configError(() => loadWorkerConfig({ WORKER_METRICS_PORT: bad })).message).toMatch(
        /WORKER_METRICS_PORT/,
      );
  });
});

describe('parseBytes', () => {
  it('reads plain numbers and decimal and binary units', () => {
    expect(parseBytes('100MB')).toBe(100_000_000);
    expect(parseBytes('1GiB')).toBe(1024 ** 3);
    expect(parseBytes('1.5 KiB')).toBe(1536);
    expect(parseBytes('12')).toBe(12);
    expect(parseBytes('2k')).toBe(2000);
    expect(parseBytes(' 3 mib ')).toBe(3 * 1024 ** 2);
  });

  it('refuses what is not a size', () => {
    expect(parseBytes('x')).toBeUndefined();
    expect(parseBytes('')).toBeUndefined();
    expect(parseBytes('12 parsecs')).toBeUndefined();
    expect(parseBytes('-5')).toBeUndefined();
    expect(parseBytes('1e6')).toBeUndefined();
  });
});

describe('REDIS_SENTINELS', () => {
  it('connects to REDIS_URL alone unless sentinels are named', () => {
    expect(loadGatewayConfig({}).redisConnection).toEqual({
      url: 'redis://127.0.0.1:6379',
      sentinels: undefined,
      sentinelName: 'mymaster',
    });
  });

  it('reads host:port lists (IPv6 in brackets) and the master group, in every process', () => {
    const env = {
      REDIS_URL: 'redis://:secret@ignored:6379/2',
      REDIS_SENTINELS: ' 10.0.0.1:26379, redis-b.lan:26380 ,[::1]:26381',
      REDIS_SENTINEL_NAME: 'trove-master',
    };
    const expected = {
      url: 'redis://:secret@ignored:6379/2',
      sentinels: [
        { host: '10.0.0.1', port: 26379 },
        { host: 'redis-b.lan', port: 26380 },
        { host: '::1', port: 26381 },
      ],
      sentinelName: 'trove-master',
    };
    expect(loadGatewayConfig(env).redisConnection).toEqual(expected);
    expect(loadWorkerConfig(env).redisConnection).toEqual(expected);
    expect(loadCommonConfig(env).redisConnection).toEqual(expected);
    expect(loadGatewayConfig({ REDIS_SENTINELS: 'a:26379' }).redisConnection.sentinelName).toBe(
      'mymaster',
    );
  });

  const bad: [Env, string, RegExp][] = [
    [{ REDIS_SENTINELS: 'host-only' }, 'REDIS_SENTINELS', /"host-only" is not host:port/],
    [{ REDIS_SENTINELS: 'a:0' }, 'REDIS_SENTINELS', /"a:0" is not host:port/],
    [{ REDIS_SENTINELS: 'a:70000' }, 'REDIS_SENTINELS', /not host:port/],
    [{ REDIS_SENTINELS: 'redis://a:26379' }, 'REDIS_SENTINELS', /not host:port/],
    [{ REDIS_SENTINELS: ' , ' }, 'REDIS_SENTINELS', /expected host:port/],
    [{ REDIS_SENTINELS: 'a:1,b:2,a:1' }, 'REDIS_SENTINELS', /"a:1" appears twice/],
    [
      { REDIS_SENTINELS: 'a:1', REDIS_SENTINEL_NAME: 'my master' },
      'REDIS_SENTINEL_NAME',
      /\[A-Za-z0-9._-\]/,
    ],
    [{ REDIS_SENTINEL_NAME: 'mymaster' }, 'REDIS_SENTINEL_NAME', /set REDIS_SENTINELS too/],
    [
      { REDIS_SENTINELS: 'a:1', REDIS_URL: 'rediss://:pw@h:6380' },
      'REDIS_URL',
      /not supported with REDIS_SENTINELS/,
    ],
  ];
  for (const [env, variable, message] of bad) {
    it(`names ${variable} for ${JSON.stringify(env)}`, () => {
      for (const load of [loadGatewayConfig, loadWorkerConfig, loadCommonConfig]) {
        const err = configError(() => load(env));
        expect(err.problems).toEqual([expect.stringMatching(new RegExp(`^${variable}:`))]);
        expect(err.problems[0]).toMatch(message);
      }
    });
  }
});
