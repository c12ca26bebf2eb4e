/** The copy's answer on stdout: one line per table, then the verdict. */
import type { CopyResult } from './copy.js';

export function renderCopyReport(r: CopyResult, from: string, to: string): string {
  const w = Math.max(...r.tables.map((t) => t.table.length));
  const n = Math.max(...r.tables.map((t) => String(t.source.rows).length));
  const lines = [`${from} → ${to}`];
  for (const t of r.tables) {
    const same = t.source.rows === t.target.rows && t.source.sha256 === t.target.sha256;
    const figures = same
      ? `${String(t.source.rows).padStart(n)} rows  sha256 ${t.source.sha256}`
      : `DIFFERS: sqlite ${t.source.rows} rows sha256 ${t.source.sha256}, ` +
        `postgres ${t.target.rows} rows sha256 ${t.target.sha256}`;
    lines.push(`  ${t.table.padEnd(w)}  ${figures}`);
  }
  lines.push(
    r.committed
      ? `copied and checked in ${r.seconds.toFixed(2)} s`
      : `MISMATCH in ${r.mismatched.join(', ')}: rolled back, the target is still empty`,
  );
  return lines.join('\n');
}
