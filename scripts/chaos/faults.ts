/**
 * Injects the planned faults into the lab and heals them: real signals,
 * real links down, a real filesystem filled, the real Redis and PostgreSQL
 * stopped, the broker closing connections. Each fault is recorded as it
 * happened (a heal that fails is retried by `healAll`).
 */
import { closeAmqpConnections } from '../../test/harness.js';
import { fillDisk, freeDisk } from '../../test/node-disk.js';
import type { FaultRecord } from './history.js';
import type { Lab } from './lab.js';
import type { PlannedFault } from './schedule.js';

interface Active {
  fault: PlannedFault;
  record: FaultRecord;
  heal: () => Promise<void>;
}

export class FaultInjector {
  readonly records: FaultRecord[] = [];
  /** Pids the drill killed itself: any other process that exits crashed. */
  readonly killedPids = new Set<number>();
  private readonly active = new Set<Active>();

  constructor(
    private readonly lab: Lab,
    private readonly log: (msg: string) => void,
  ) {}

  /** Injects `fault` now; an instant one is over when this resolves, a lasting one is healed by `heal`. */
  async inject(fault: PlannedFault): Promise<Active | undefined> {
    const record: FaultRecord = {
      kind: fault.kind,
      target: fault.peer ? `${fault.target}→${fault.peer}` : fault.target,
      start: Date.now(),
    };
    this.records.push(record);
    this.log(`fault: ${fault.kind} ${record.target}`);
    try {
      const heal = await this.apply(fault);
      if (!heal) {
        record.end = Date.now();
        return undefined;
      }
      const active = { fault, record, heal };
      this.active.add(active);
      return active;
    } catch (err) {
      record.error = `inject: ${(err as Error).message.split('\n')[0]}`;
      record.end = Date.now();
      return undefined;
    }
  }

  async heal(active: Active): Promise<void> {
    try {
      await active.heal();
      active.record.end = Date.now();
      delete active.record.error;
      this.active.delete(active);
      this.log(`healed: ${active.fault.kind} ${active.record.target}`);
    } catch (err) {
      active.record.error = `heal: ${(err as Error).message.split('\n')[0]}`;
      this.log(`heal failed, retried at the end: ${active.record.target}: ${active.record.error}`);
    }
  }

  /** Heals whatever is still active, retrying until each heal succeeds or `timeoutMs` passes. */
  async healAll(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.active.size > 0) {
      for (const active of [...this.active]) await this.heal(active);
      if (this.active.size === 0) return;
      if (Date.now() > deadline)
        throw new Error(
          `could not heal: ${[...this.active].map((a) => a.record.target).join(', ')}`,
        );
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  /** Does the fault; returns how to heal it, or undefined when it is instant. */
  private async apply(f: PlannedFault): Promise<(() => Promise<void>) | undefined> {
    const { cluster, network, redis, postgres } = this.lab;
    switch (f.kind) {
      case 'kill': {
        const pid = cluster.proc(f.target)?.proc.pid;
        if (pid !== undefined) this.killedPids.add(pid);
        await cluster.kill(f.target, 'SIGKILL');
        return () => this.restart(f.target);
      }
      case 'pause': {
        const proc = cluster.proc(f.target)?.proc;
        if (!proc || proc.exitCode !== null || proc.signalCode !== null)
          throw new Error(`${f.target} is not running`);
        proc.kill('SIGSTOP');
        return async () => {
          proc.kill('SIGCONT');
        };
      }
      case 'cut': {
        const host = this.lab.hostOf(f.target);
        network.cut(host);
        return async () => network.heal(host);
      }
      case 'cut-one-way': {
        const [from, to] = [this.lab.hostOf(f.target), this.lab.hostOf(f.peer!)];
        network.cutBetween(from, to, 'drop');
        return async () => network.healBetween(from, to);
      }
      case 'redis-restart':
        await redis.stop('SIGKILL');
        return () => redis.start();
      case 'redis-flushall':
        await redis.flushAll();
        return undefined;
      case 'amqp-close':
        await closeAmqpConnections(cluster);
        return undefined;
      case 'postgres-restart':
        // An immediate shutdown: no checkpoint, crash recovery at the next start.
        await postgres.stop('SIGQUIT');
        return () => postgres.start();
      case 'disk-full': {
        const dir = this.lab.node(f.target).dataDir;
        await fillDisk(dir);
        return () => freeDisk(dir);
      }
    }
  }

  /** Starts a killed (or crashed) process again (a gateway on its port, a node on its disk). */
  async restart(name: string): Promise<void> {
    const { cluster } = this.lab;
    const proc = cluster.proc(name)?.proc;
    if (proc && proc.exitCode === null && proc.signalCode === null) return;
    if (cluster.nodes.some((n) => n.id === name)) await cluster.startNode(name);
    else if (name.startsWith('gw')) await cluster.startGateway(name);
    else await cluster.startWorker(name);
  }
}
