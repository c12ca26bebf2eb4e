/**
 * The rebalance suite's rows: the move onto the new node beside the plain
 * copy of the same blobs (ratio = rebalance / plain copy), the worker's
 * limits, the drain back, and whether every replica ended where the layout
 * places it.
 */
import type { CopyRate } from './bench-objects.js';
import type { RebalanceMove, RebalanceResults } from './rebalance-suite.js';
import type { PlacementCheck } from './rebalance-watch.js';
import { contextRow, fmt, verdictIf, type Row } from './table.js';

const objects = (x: CopyRate) => `${fmt(x.objectsPerS)} objects/s`;
const mb = (x: CopyRate) => `${fmt(x.mbPerS)} MB/s`;
const both = (x: CopyRate) => `${objects(x)}, ${mb(x)}`;
const at = (v: number | undefined) => (v === undefined ? '?' : `${fmt(v)} s`);
const ratio = (a: number | undefined, b: number | undefined) =>
  a !== undefined && b ? a / b : undefined;

export function rebalanceRows(r: RebalanceResults): Row[] {
  const node = r.node;
  const what = `${r.objects.small} × 64 KiB + ${r.objects.large} × 50 MB`;
  const { one, eight } = r.reference;
  const plain = (x: CopyRate | undefined, n: number, cell: (x: CopyRate) => string) =>
    x ? `plain GET→PUT, ${n} at a time, ${cell(x)}` : 'plain GET→PUT: no result';
  const add = r.add;
  const limits = r.throttle;
  const byteLimit = limits.bytesPerS ? `${fmt(limits.bytesPerS / 1e6)} MB/s` : 'unlimited';
  const objectLimit = limits.objectsPerS ? `${limits.objectsPerS}/s` : 'unlimited';
  const rows: Row[] = [
    contextRow(
      `rebalance onto new ${node}, ${what}`,
      add
        ? `${at(add.seconds)} from the layout change (first move ${at(add.firstMoveS)}); ` +
            `${add.moved} replicas (${fmt(add.bytes / 1e6)} MB) moved, ${add.pass.removed} removed`
        : 'not done',
      one && eight
        ? `plain GET→PUT of the same blobs ${at(one.seconds)} 1 at a time, ${at(eight.seconds)} 8 at a time`
        : 'plain GET→PUT: no result',
      undefined,
    ),
    contextRow(
      `rebalance onto ${node}, objects/s`,
      add ? `${objects(add.rate)} (limit ${objectLimit})` : 'no result',
      plain(one, 1, objects),
      ratio(add?.rate.objectsPerS, one?.objectsPerS),
    ),
    contextRow(
      `rebalance onto ${node}, MB/s`,
      add ? `${mb(add.rate)} (limit ${byteLimit})` : 'no result',
      plain(one, 1, mb),
      ratio(add?.rate.mbPerS, one?.mbPerS),
    ),
    contextRow(
      `rebalance onto ${node}, vs 8 at a time`,
      add ? both(add.rate) : 'no result',
      plain(eight, 8, both),
      ratio(add?.rate.mbPerS, eight?.mbPerS),
    ),
  ];
  if (add) {
    rows.push(
      contextRow(
        `rebalance onto ${node}, the pass's own window`,
        `${add.pass.moved} moves in ${at(add.pass.seconds)} (started_at → updated_at` +
          `${add.passes === 1 ? '' : `, over ${add.passes} passes`})`,
        '—',
        undefined,
      ),
    );
  }
  if (limits.bytesPerS > 0) {
    rows.push(
      contextRow(
        'rebalance MB/s vs its limit',
        add ? mb(add.rate) : 'no result',
        `REBALANCE_BYTES_PER_SECOND ${byteLimit}`,
        ratio(add?.rate.mbPerS, limits.bytesPerS / 1e6),
      ),
    );
  }
  if (limits.objectsPerS > 0) {
    rows.push(
      contextRow(
        'rebalance objects/s vs its limit',
        add ? objects(add.rate) : 'no result',
        `REBALANCE_OBJECTS_PER_SECOND ${objectLimit}`,
        ratio(add?.rate.objectsPerS, limits.objectsPerS),
      ),
    );
  }
  rows.push(drainRow(node, r.drain, one));
  rows.push(placementRow(`replicas on their placement after the move`, r.placement.afterAdd));
  const h = r.hashed;
  rows.push({
    ...contextRow(
      `moved copies read back from ${node}'s disk`,
      h ? `${h.blobs - h.wrong} of ${h.blobs} hash to their sha256` : 'not read',
      '—',
      undefined,
    ),
    target: 'all',
    verdict: h ? verdictIf(h.wrong === 0) : 'n/a',
  });
  rows.push(placementRow(`replicas on their placement after the drain`, r.placement.afterDrain));
  const under = [r.add, r.drain].map((m) => m?.maxUnderReplicated);
  rows.push({
    ...contextRow(
      'most files under-replicated while moving',
      `${under[0] ?? '?'} (move), ${under[1] ?? '?'} (drain)`,
      '—',
      undefined,
    ),
    target: '0',
    verdict: under.includes(undefined) ? 'n/a' : verdictIf(under.every((u) => u === 0)),
  });
  rows.push({
    ...contextRow(
      `cluster as it began (${node} gone, files deleted)`,
      r.restored ? 'yes' : 'no',
      '—',
      undefined,
    ),
    target: 'yes',
    verdict: verdictIf(r.restored),
  });
  return rows;
}

/** The drain moves the same blobs back: beside the same one-at-a-time copy. */
function drainRow(node: string, drain: RebalanceMove | undefined, one: CopyRate | undefined): Row {
  return contextRow(
    `drain of ${node} (the same blobs back)`,
    drain ? `${at(drain.seconds)}, ${both(drain.rate)}` : 'not done',
    one ? `plain GET→PUT onto ${node}, 1 at a time, ${both(one)}` : 'plain GET→PUT: no result',
    ratio(drain?.rate.mbPerS, one?.mbPerS),
  );
}

function placementRow(figure: string, c: PlacementCheck | undefined): Row {
  const bad = c && c.offRows + c.extraOnDisk + c.missingOnDisk;
  return {
    ...contextRow(
      figure,
      c
        ? `${c.blobs} blobs: ${c.offRows} with rows off placement, ${c.extraOnDisk} copies left ` +
            `off placement, ${c.missingOnDisk} missing from a placement disk`
        : 'not checked',
      '—',
      undefined,
    ),
    target: 'all',
    verdict: c ? verdictIf(bad === 0) : 'n/a',
  };
}
