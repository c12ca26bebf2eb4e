/**
 * GET /metrics of every process, on a real cluster (three nodes, a gateway,
 * a worker): one image uploaded, downloaded until its link is used up, made
 * into variants by the worker; then each process's counters must have moved
 * by exactly what happened, read from the Prometheus text format.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { ROOT, fixture, startCluster, waitFor, type Cluster } from './harness.js';
import { matching, metricTypes, metricValue, scrape, type Sample } from './metrics-text.js';

let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ worker: true });
});
afterAll(async () => {
  await cluster?.stop();
});
const showLogs = () => onTestFailed(() => console.log(cluster.logTail(60)));

const gatewayMetrics = () => scrape(`${cluster.gatewayUrl}/metrics`);
const nodeMetrics = (i: number) => scrape(`${cluster.nodes[i]!.url}/metrics`);
const workerMetrics = () => scrape(cluster.proc('worker')!.metricsUrl!);

/** Counter movement between two scrapes. */
const delta = (
  before: Sample[],
  after: Sample[],
  name: string,
  labels: Record<string, string> = {},
) => metricValue(after, name, labels) - metricValue(before, name, labels);

interface FileJson {
  id: string;
  size: number;
  processing: { state: string; variants?: Record<string, { size: number }> };
}

describe('GET /metrics', () => {
  it('counts an upload, its downloads, its refusal and its image job in every process', async () => {
    showLogs();
    const photo = fixture('photo.jpg');
    const [gw0, nodes0, w0] = await Promise.all([
      gatewayMetrics(),
      Promise.all([0, 1, 2].map(nodeMetrics)),
      workerMetrics(),
    ]);

    const form = new FormData();
    form.append('file', new Blob([photo], { type: 'image/jpeg' }), 'photo.jpg');
    const up = await fetch(`${cluster.gatewayUrl}/upload?max_downloads=2`, {
      method: 'POST',
      body: form,
    });
    expect(up.status, await up.clone().text()).toBe(201);
    const { id } = (await up.json()) as FileJson;

    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${cluster.gatewayUrl}/download/${id}`);
      expect(res.status).toBe(200);
      expect((await res.arrayBuffer()).byteLength).toBe(photo.length);
    }
    const gone = await fetch(`${cluster.gatewayUrl}/download/${id}`);
    expect(gone.status).toBe(410);
    expect(((await gone.json()) as { error: { code: string } }).error.code).toBe(
      'DOWNLOAD_LIMIT_REACHED',
    );
    expect((await fetch(`${cluster.gatewayUrl}/no/such/page/${id}`)).status).toBe(404);

    const file = await waitFor('image processed', async () => {
      const f = (await (await fetch(`${cluster.gatewayUrl}/files/${id}`)).json()) as FileJson;
      return f.processing.state === 'done' && f;
    });
    const variantBytes = Object.values(file.processing.variants ?? {}).reduce(
      (sum, v) => sum + v.size,
      0,
    );
    const variantCount = Object.keys(file.processing.variants ?? {}).length;
    expect(variantCount).toBeGreaterThanOrEqual(1);

    // A response's figures are recorded when its last byte has gone out: poll until they are in.
    const gw = await waitFor('gateway counters', async () => {
      const s = await gatewayMetrics();
      return (
        delta(gw0, s, 'trove_http_requests_total', { route: '/download/:id', status: '410' }) >=
          1 && s
      );
    });
    // The upload: one request, one file, every byte of it read.
    expect(delta(gw0, gw, 'trove_uploads_total', { outcome: 'stored' })).toBe(1);
    expect(delta(gw0, gw, 'trove_uploads_total', { outcome: 'rejected' })).toBe(0);
    expect(delta(gw0, gw, 'trove_uploaded_files_total')).toBe(1);
    expect(delta(gw0, gw, 'trove_upload_bytes_total')).toBe(photo.length);
    expect(
      delta(gw0, gw, 'trove_http_requests_total', {
        method: 'POST',
        route: '/upload',
        status: '201',
      }),
    ).toBe(1);
    // Two downloads, every byte sent, then the 410.
    expect(delta(gw0, gw, 'trove_downloads_total', { blob: 'original' })).toBe(2);
    expect(delta(gw0, gw, 'trove_download_bytes_total')).toBe(2 * photo.length);
    expect(
      delta(gw0, gw, 'trove_download_rejections_total', {
        code: 'DOWNLOAD_LIMIT_REACHED',
        status: '410',
      }),
    ).toBe(1);
    expect(delta(gw0, gw, 'trove_download_rejections_total')).toBe(1);
    const downloads = { method: 'GET', route: '/download/:id', status: '200' };
    expect(delta(gw0, gw, 'trove_http_requests_total', downloads)).toBe(2);
    expect(delta(gw0, gw, 'trove_http_request_duration_seconds_count', downloads)).toBe(2);
    expect(
      delta(gw0, gw, 'trove_http_requests_total', { route: '/download/:id', status: '410' }),
    ).toBe(1);
    // Ids never become labels; the unknown path is "unmatched".
    expect(delta(gw0, gw, 'trove_http_requests_total', { route: 'unmatched', status: '404' })).toBe(
      1,
    );
    expect(gw.some((s) => Object.values(s.labels).some((v) => v.includes(id)))).toBe(false);
    // Node states and object counts, read at scrape time.
    expect(metricValue(gw, 'trove_node_state', { state: 'online' })).toBe(3);
    expect(metricValue(gw, 'trove_node_state', { state: 'offline' })).toBe(0);
    expect(matching(gw, 'trove_node_state', { node: 'node2', state: 'online' })[0]?.value).toBe(1);
    expect(metricValue(gw, 'trove_objects')).toBe(1);
    expect(metricValue(gw, 'trove_objects_under_replicated')).toBe(0);
    // The process figures prom-client collects.
    expect(metricValue(gw, 'trove_process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(matching(gw, 'trove_nodejs_eventloop_lag_p99_seconds')).toHaveLength(1);

    // Worker: the image job done (the ack follows the recorded variants: poll).
    const w = await waitFor('worker counters', async () => {
      const s = await workerMetrics();
      return delta(w0, s, 'trove_jobs_total', { job: 'images.process', outcome: 'done' }) >= 1 && s;
    });
    expect(delta(w0, w, 'trove_jobs_total', { job: 'images.process', outcome: 'done' })).toBe(1);
    expect(delta(w0, w, 'trove_jobs_total', { job: 'images.process', outcome: 'failed' })).toBe(0);
    expect(
      delta(w0, w, 'trove_job_duration_seconds_count', { job: 'images.process', outcome: 'done' }),
    ).toBe(1);
    const depths = matching(w, 'trove_queue_depth');
    for (const queue of ['files.delete', 'replicas.repair', 'nodes.check', 'images.process'])
      expect(matching(depths, 'trove_queue_depth', { queue }), queue).toHaveLength(1);
    expect(matching(depths, 'trove_queue_depth', { queue: 'dead-letters' })).toHaveLength(1);
    expect(matching(w, 'trove_process_cpu_seconds_total')).toHaveLength(1);

    // Nodes: with three copies on three nodes, each wrote the original and every variant.
    const nodes = await Promise.all([0, 1, 2].map(nodeMetrics));
    for (const [i, n] of nodes.entries()) {
      expect(delta(nodes0[i]!, n, 'trove_node_blobs_written_total'), `node${i + 1}`).toBe(
        1 + variantCount,
      );
      expect(delta(nodes0[i]!, n, 'trove_node_blob_bytes_written_total'), `node${i + 1}`).toBe(
        photo.length + variantBytes,
      );
      expect(metricValue(n, 'trove_node_blobs')).toBe(1 + variantCount);
      expect(metricValue(n, 'trove_node_disk_free_bytes')).toBeGreaterThan(0);
    }
    // The two downloads were read from the nodes (the worker read the original too).
    const read = nodes.reduce(
      (sum, n, i) => sum + delta(nodes0[i]!, n, 'trove_node_blob_bytes_read_total'),
      0,
    );
    expect(read).toBeGreaterThanOrEqual(2 * photo.length);
    expect(
      nodes.reduce(
        (sum, n, i) =>
          sum +
          delta(nodes0[i]!, n, 'trove_http_requests_total', {
            method: 'PUT',
            route: '/blobs/:key',
            status: '201',
          }),
        0,
      ),
    ).toBe(3 * (1 + variantCount));
  });

  it('needs METRICS_TOKEN as a Bearer token when it is set', async () => {
    showLogs();
    const token = 'metrics-token-of-enough-length';
    const url = await cluster.startGateway('gw-metrics', { METRICS_TOKEN: token });
    const refused = await fetch(`${url}/metrics`);
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED');
    const wrong = await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    const samples = await scrape(`${url}/metrics`, { authorization: `Bearer ${token}` });
    expect(
      metricValue(samples, 'trove_http_requests_total', { route: '/metrics', status: '401' }),
    ).toBe(2);
    // The other gateway has no token: open.
    expect((await fetch(`${cluster.gatewayUrl}/metrics`)).status).toBe(200);
  });
});

describe('metric names', () => {
  it('are all in docs/metrics.md, and every name the docs and the Grafana dashboard use exists', async () => {
    showLogs();
    const texts = await Promise.all(
      [
        `${cluster.gatewayUrl}/metrics`,
        `${cluster.nodes[0]!.url}/metrics`,
        cluster.proc('worker')!.metricsUrl!,
      ].map(async (url) => (await fetch(url)).text()),
    );
    const exposed = new Map(texts.flatMap((t) => [...metricTypes(t)]));
    // Series names: a histogram is queried through its _bucket, _sum and _count.
    const series = new Set(
      [...exposed].flatMap(([name, type]) =>
        type === 'histogram' ? [name, `${name}_bucket`, `${name}_sum`, `${name}_count`] : [name],
      ),
    );
    const docs = readFileSync(join(ROOT, 'docs/metrics.md'), 'utf8');
    const documented = new Set([...docs.matchAll(/^\| `(trove_[a-z0-9_]+)`/gm)].map((m) => m[1]!));
    // Trove's own metrics (not prom-client's process ones) each have a row in the docs.
    const own = [...exposed.keys()].filter((n) => !/^trove_(process|nodejs)_/.test(n));
    for (const name of own) expect(documented, name).toContain(name);
    for (const name of documented) expect(series, `docs/metrics.md: ${name}`).toContain(name);

    const dashboard = readFileSync(join(ROOT, 'deploy/grafana/dashboards/trove.json'), 'utf8');
    const used = new Set([...dashboard.matchAll(/trove_[a-z0-9_]+/g)].map((m) => m[0]));
    expect(used.size).toBeGreaterThan(5);
    for (const name of used) expect(series, `trove.json: ${name}`).toContain(name);
  });
});

describe('the worker metrics server', () => {
  it('is off with WORKER_METRICS_PORT=0, and a port already taken costs only the metrics', async () => {
    showLogs();
    const taken = new URL(cluster.proc('worker')!.metricsUrl!).port;
    // Both reach "consuming jobs" (startWorker waits for it): the jobs run either way.
    const clash = await cluster.startWorker('worker-clash', { WORKER_METRICS_PORT: taken });
    const off = await cluster.startWorker('worker-off', { WORKER_METRICS_PORT: '0' });
    const log = (p: typeof clash) => readFileSync(p.logFile, 'utf8');
    expect(log(cluster.proc('worker')!)).toContain('metrics listening');
    expect(log(clash)).toContain('metrics server could not listen');
    expect(log(off)).not.toContain('metrics listening');
    expect(log(off)).not.toContain('metrics server could not listen');
    // The first worker still answers on its port.
    expect(matching(await workerMetrics(), 'trove_queue_depth').length).toBeGreaterThan(0);
    await Promise.all([
      cluster.kill('worker-clash', 'SIGTERM'),
      cluster.kill('worker-off', 'SIGTERM'),
    ]);
  });
});
