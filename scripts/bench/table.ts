/**
 * The report's table: one row per figure, the number formats its cells
 * share, and how it is drawn. Suites build their rows with these; report.ts
 * puts them together, so every import points from the report to the suites
 * and from both to here.
 */
import { SERVICES } from './cluster.js';
import type { CpuCost } from './procfs.js';

export interface Row {
  figure: string;
  trove: string;
  reference: string;
  /** Trove / reference (for memory rows: undefined). */
  ratio: number | undefined;
  target: string;
  verdict: 'ok' | 'MISS' | 'n/a' | '—';
  /** OpenStack Swift on the reference machine (BENCHMARKS.md), for context only. */
  swift: string;
}

/** Three significant figures or so: 0.42, 4.20, 42.0, 420. */
export const fmt = (n: number) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));

/** autocannon records whole milliseconds, so 0 means "under a millisecond". */
export const ms = (v: number) => (v < 1 ? '<1' : String(v));

/** 'ok' when `ratio` reaches `min`; '—' for a figure without a target. */
export function verdictOf(ratio: number | undefined, min: number | undefined): Row['verdict'] {
  if (min === undefined) return '—';
  if (ratio === undefined) return 'n/a';
  return ratio >= min ? 'ok' : 'MISS';
}

/** 'ok' or 'MISS' for an absolute target (a latency, a CPU time); 'n/a' without a figure. */
export function verdictIf(met: boolean | undefined): Row['verdict'] {
  if (met === undefined) return 'n/a';
  return met ? 'ok' : 'MISS';
}

/** A row with no target and no Swift context. */
export function contextRow(
  figure: string,
  trove: string,
  reference: string,
  ratio: number | undefined,
): Row {
  return { figure, trove, reference, ratio, target: '—', verdict: '—', swift: '—' };
}

/** The rows as an aligned Markdown table, readable as is and pasteable into docs. */
export function renderTable(rows: Row[]): string {
  const header = ['figure', 'Trove', 'reference', 'ratio', 'target', 'ok?', 'Swift (context)'];
  const cells = rows.map((r) => [
    r.figure,
    r.trove,
    r.reference,
    r.ratio === undefined ? '—' : r.ratio.toFixed(2),
    r.target,
    r.verdict,
    r.swift,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => `| ${c.map((v, i) => v.padEnd(widths[i]!)).join(' | ')} |`;
  return [
    line(header),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...cells.map(line),
  ].join('\n');
}

/** CPU per unit of each process, in the order of `npm start` (gateway, nodes, worker), then any other. */
export function byProcessCell(cost: CpuCost): string {
  const names = Object.keys(cost.byProcess).sort((a, b) => rank(a) - rank(b));
  return names.map((n) => `${n} ${fmt(cost.byProcess[n]!)}`).join(', ');
}

function rank(name: string): number {
  const i = SERVICES.indexOf(name);
  return i === -1 ? SERVICES.length : i;
}
