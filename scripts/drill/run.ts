/**
 * The drill itself, step by step: upload, start traffic, kill -9 a node,
 * time its detection, read every file back while it is down, restart it
 * (wiped or not), time the return to three verified copies, then stop the
 * traffic and check everything once more. Each step records what went wrong
 * and the drill goes on, so one run reports every problem and the node is
 * always restarted.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import type { NodeAddress } from '../../shared/config.js';
import {
  forEachLimited,
  getCluster,
  killNode,
  missingOnDisk,
  nodeDataDir,
  restartNode,
  statusOf,
  verifyOnDisk,
  waitFor,
  wipeNode,
  type ClusterState,
  type Restarted,
} from '../cluster-control.js';
import { Tally, TroveClient, type StoredFile } from './client.js';
import type { DrillOptions } from './options.js';
import { Traffic } from './traffic.js';

/** How long the gateway gets to notice the kill, and to call the node offline. */
const DETECT_TIMEOUT_MS = 30_000;
/** Traffic before the kill, so the kill lands on a cluster under load. */
const STEADY_MS = 2000;
/** Longest wait for one upload to be accepted while the node is down. */
const DOWN_UPLOAD_TIMEOUT_MS = 10_000;
const PROGRESS_EVERY_MS = 5000;

export interface DrillResult {
  opts: DrillOptions;
  startedAt: Date;
  /** Files uploaded before the kill; then every file the drill stored, traffic included. */
  firstFiles: number;
  allFiles: number;
  killedPid: number | undefined;
  /** Seconds from the kill until GET /api/cluster showed the node suspect or offline. */
  detectS: number | undefined;
  /** …and until it showed it offline. */
  offlineS: number | undefined;
  /** Files downloaded and checked while the node was down. */
  checkedWhileDown: number;
  /** Uploads accepted while the node was down. */
  uploadsWhileDown: number;
  /** Uploads answered with fewer `ok` copies than placed ones (down, or not yet seen back): repair's work. */
  uploadsShort: number;
  wipedDir: string | undefined;
  restarted: Restarted | undefined;
  /** Seconds from the restart until every copy was back (undefined: never, within --timeout). */
  redundancyS: number | undefined;
  repairs: { done: number; bytes: number } | undefined;
  tally: Tally;
  /** Files lost, not downloadable, with wrong bytes or not restored; steps that did not happen. */
  losses: string[];
}

export function progress(line: string): void {
  process.stderr.write(`[drill] ${line}\n`);
}

const seconds = (ms: number) => ms / 1000;

export class Drill {
  private readonly t0 = performance.now();
  private phase = 'setup';
  readonly tally = new Tally(
    () => this.elapsedS(),
    () => this.phase,
  );
  private readonly client: TroveClient;
  private readonly pool: StoredFile[] = [];
  private killed = false;
  private restartedAt = 0;
  readonly result: DrillResult;

  constructor(
    private readonly opts: DrillOptions,
    private readonly storageDir: string,
    private readonly nodes: NodeAddress[],
    private readonly dispatcher: Dispatcher,
  ) {
    this.client = new TroveClient(opts.gateway, dispatcher, this.tally, () => this.phase);
    this.result = {
      opts,
      startedAt: new Date(),
      firstFiles: 0,
      allFiles: 0,
      killedPid: undefined,
      detectS: undefined,
      offlineS: undefined,
      checkedWhileDown: 0,
      uploadsWhileDown: 0,
      uploadsShort: 0,
      wipedDir: undefined,
      restarted: undefined,
      redundancyS: undefined,
      repairs: undefined,
      tally: this.tally,
      losses: [],
    };
  }

  private get node(): NodeAddress {
    return this.nodes.find((n) => n.id === this.opts.node)!;
  }

  private elapsedS(): number {
    return seconds(performance.now() - this.t0);
  }

  async run(): Promise<DrillResult> {
    const { losses } = this.result;
    await this.uploadFirst();
    const before = await getCluster(this.opts.gateway, this.dispatcher);
    const traffic = new Traffic(this.client, this.pool, this.opts.concurrency);
    progress(`traffic: ${this.opts.concurrency} clients, verified downloads and uploads`);
    this.phase = 'before the kill';
    traffic.start();
    try {
      await sleep(STEADY_MS);
      await this.killAndDetect();
      await this.checkWhileDown();
      await this.restart();
      await this.awaitRedundancy();
    } catch (err) {
      losses.push(`the drill stopped early: ${(err as Error).message}`);
    } finally {
      await this.ensureRestarted().catch((err: Error) => losses.push(err.message));
      this.phase = 'stopping';
      progress('stopping the traffic…');
      await traffic.stop();
    }
    await this.finalCheck();
    const after = await getCluster(this.opts.gateway, this.dispatcher).catch(() => undefined);
    // The stats live in Redis: a FLUSHALL during the drill resets them, and the delta means nothing.
    if (after && after.repairs.done >= before.repairs.done) {
      this.result.repairs = {
        done: after.repairs.done - before.repairs.done,
        bytes: after.repairs.bytes - before.repairs.bytes,
      };
    }
    this.result.allFiles = this.pool.length;
    this.result.uploadsShort = this.pool.filter(
      (f) => f.replicasOk.length < f.placement.length,
    ).length;
    return this.result;
  }

  /** Step 1: the files that exist before anything fails, each on every node before the kill. */
  private async uploadFirst(): Promise<void> {
    this.phase = 'first uploads';
    progress(`uploading ${this.opts.files} files (max_downloads=0)…`);
    const tags = Array.from({ length: this.opts.files }, (_, i) => `first-${i}`);
    await forEachLimited(tags, this.opts.concurrency, async (tag) => {
      const file = await this.client.upload(tag);
      if (file) this.pool.push(file);
    });
    this.result.firstFiles = this.pool.length;
    if (this.pool.length === 0) throw new Error('not one upload succeeded; see the failures above');
    // A file already short of a copy before the kill would prove nothing about the kill.
    await this.waitForCopies(this.pool, 30_000, 'three copies of the first uploads');
  }

  /** Step 3: kill -9, then poll the gateway's view until it stops calling the node online. */
  private async killAndDetect(): Promise<void> {
    const id = this.opts.node;
    const killedAt = performance.now();
    this.result.killedPid = await killNode(this.storageDir, id);
    this.killed = true;
    this.phase = `${id} down`;
    progress(`kill -9 ${id} (pid ${this.result.killedPid})`);
    const since = () => seconds(performance.now() - killedAt);
    try {
      await waitFor(
        `${id} not online`,
        async () => (await this.nodeStatus(id)) !== 'online',
        DETECT_TIMEOUT_MS,
        50,
      );
      this.result.detectS = since();
      progress(`${id} detected down after ${this.result.detectS.toFixed(2)} s`);
      await waitFor(
        `${id} offline`,
        async () => (await this.nodeStatus(id)) === 'offline',
        DETECT_TIMEOUT_MS,
        50,
      );
      this.result.offlineS = since();
      progress(`${id} offline after ${this.result.offlineS.toFixed(2)} s`);
    } catch (err) {
      this.result.losses.push(`the gateway did not report ${id} down: ${(err as Error).message}`);
    }
  }

  private async nodeStatus(id: string): Promise<string | undefined> {
    return statusOf(await getCluster(this.opts.gateway, this.dispatcher), id);
  }

  /** Step 4: every file stored so far downloads with the right bytes, and uploads still work. */
  private async checkWhileDown(): Promise<void> {
    const files = [...this.pool];
    progress(`downloading all ${files.length} files while ${this.opts.node} is down…`);
    await this.downloadAll(files, `while ${this.opts.node} was down`);
    this.result.checkedWhileDown = files.length;
    const downPhase = this.phase;
    const accepted = () => this.pool.filter((f) => f.phase === downPhase);
    try {
      await waitFor('an upload', async () => accepted().length > 0, DOWN_UPLOAD_TIMEOUT_MS);
    } catch {
      this.result.losses.push(`no upload was accepted while ${this.opts.node} was down`);
    }
    this.result.uploadsWhileDown = accepted().length;
  }

  private async downloadAll(files: StoredFile[], when: string): Promise<void> {
    const bad: string[] = [];
    await forEachLimited(files, this.opts.concurrency, async (file) => {
      if (!(await this.client.download(file))) bad.push(file.id);
    });
    if (bad.length > 0) {
      this.result.losses.push(
        `${bad.length} of ${files.length} files did not download intact ${when}: ${bad.slice(0, 10).join(', ')}`,
      );
    }
  }

  /** Step 5: the node back, as an operator would start it, maybe on an empty disk. */
  private async restart(): Promise<void> {
    const id = this.opts.node;
    if (this.opts.wipe) {
      this.result.wipedDir = await wipeNode(id);
      progress(`wiped ${this.result.wipedDir}`);
    }
    this.phase = `${id} restarting`;
    this.restartedAt = performance.now();
    this.result.restarted = await restartNode(this.storageDir, this.node, 'drill');
    this.killed = false;
    progress(
      `restarted ${id}: node dist/storage-node/main.js --id ${id} (pid ${this.result.restarted.pid}); ` +
        `its log: ${this.result.restarted.log}`,
    );
  }

  /** Restarts the node if the drill killed it and has not brought it back (a failed step, Ctrl-C). */
  async ensureRestarted(): Promise<void> {
    if (!this.killed) return;
    progress(`bringing ${this.opts.node} back before exiting…`);
    await this.restart();
  }

  /** Step 6: time until the metadata and every disk agree that each file has all its copies. */
  private async awaitRedundancy(): Promise<void> {
    this.phase = `${this.opts.node} restored?`;
    progress(`waiting for every copy to be back (timeout ${this.opts.timeoutS} s)…`);
    try {
      await this.waitForCopies(this.pool, this.opts.timeoutS * 1000, 'full redundancy', true);
      this.result.redundancyS = seconds(performance.now() - this.restartedAt);
      progress(`full redundancy ${this.result.redundancyS.toFixed(2)} s after the restart`);
    } catch (err) {
      this.result.losses.push(`not restored: ${(err as Error).message}`);
    } finally {
      this.phase = `${this.opts.node} back`;
    }
  }

  /**
   * Waits until every node is online, GET /api/cluster counts no
   * under-replicated file, and each node's disk has a blob named with the
   * right sha256 for every file placed on it; the pool may grow meanwhile.
   * Then reads and hashes those blobs (the name is only the node's claim).
   * With `whileHealing`, `timeoutMs` is the longest wait without progress
   * (fewer copies lacking than ever before), so a big store that heals
   * steadily is waited for, and one that stalls fails as early as a small one.
   */
  private async waitForCopies(
    pool: StoredFile[],
    timeoutMs: number,
    what: string,
    whileHealing = false,
  ): Promise<void> {
    let lastReport = performance.now();
    let deadline = performance.now() + timeoutMs;
    let fewest = Number.POSITIVE_INFINITY;
    let lacking = { text: '', count: 0 };
    let snapshot: StoredFile[] = [];
    for (;;) {
      snapshot = [...pool];
      const state = await getCluster(this.opts.gateway, this.dispatcher);
      lacking = await this.lacking(state, snapshot);
      if (lacking.count === 0) break;
      if (whileHealing && lacking.count < fewest) {
        fewest = lacking.count;
        deadline = performance.now() + timeoutMs;
      }
      if (whileHealing && performance.now() - lastReport >= PROGRESS_EVERY_MS) {
        lastReport = performance.now();
        progress(`  ${lacking.text} (repairs queued ${state.repairs.queued})`);
      }
      if (performance.now() >= deadline) {
        const how = whileHealing ? 'with no progress for' : 'after';
        throw new Error(
          `timed out ${how} ${(timeoutMs / 1000).toFixed(0)} s waiting for ${what}; still: ${lacking.text}`,
        );
      }
      await sleep(500);
    }
    await this.verifyDisks(snapshot);
  }

  /** What keeps the cluster from full redundancy, in words, and how many copies that is (0: nothing). */
  private async lacking(
    state: ClusterState,
    files: StoredFile[],
  ): Promise<{ text: string; count: number }> {
    const notOnline = state.nodes.filter((n) => n.status !== 'online');
    if (notOnline.length > 0)
      return {
        text: notOnline.map((n) => `${n.id} ${n.status}`).join(', '),
        count: Number.POSITIVE_INFINITY,
      };
    const parts: string[] = [];
    let count = state.under_replicated;
    if (state.under_replicated > 0) parts.push(`under_replicated ${state.under_replicated}`);
    for (const node of this.nodes) {
      const expected = expectedOn(node.id, files);
      const missing = await missingOnDisk(nodeDataDir(node.id), expected);
      count += missing.length;
      if (missing.length > 0) parts.push(`${node.id} lacks ${missing.length} of ${expected.size}`);
    }
    return { text: parts.join(', '), count };
  }

  private async verifyDisks(files: StoredFile[]): Promise<void> {
    for (const node of this.nodes) {
      const problems = await verifyOnDisk(nodeDataDir(node.id), expectedOn(node.id, files));
      for (const p of problems.slice(0, 10)) this.result.losses.push(`${node.id}: ${p}`);
      if (problems.length > 10)
        this.result.losses.push(`${node.id}: … and ${problems.length - 10} more bad blobs`);
    }
  }

  /** Step 7, after the traffic: every file, the last uploads included, on every disk and downloadable. */
  private async finalCheck(): Promise<void> {
    this.phase = 'final check';
    progress(`final check: ${this.pool.length} files on every disk and downloaded once more…`);
    try {
      await this.waitForCopies(this.pool, 30_000, 'every copy of the last uploads');
    } catch (err) {
      this.result.losses.push(`final check: ${(err as Error).message}`);
    }
    await this.downloadAll([...this.pool], 'at the end');
  }
}

/** key → sha256 of the files placed on `nodeId`. */
function expectedOn(nodeId: string, files: StoredFile[]): Map<string, string> {
  return new Map(files.filter((f) => f.placement.includes(nodeId)).map((f) => [f.id, f.sha256]));
}
