/** The drill's answer on stdout: one line per figure, then PASS or FAIL with every reason. */
import type { DrillResult } from './run.js';

const s = (v: number | undefined) => (v === undefined ? 'never' : `${v.toFixed(2)} s`);

function mb(bytes: number): string {
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${(bytes / 1e3).toFixed(1)} kB`;
}

/** Lines of `label  value  explanation`, aligned. */
function table(rows: [string, string, string][]): string[] {
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  return rows.map(([a, b, c]) => `  ${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`.trimEnd());
}

export function renderReport(r: DrillResult): string {
  const { opts, tally } = r;
  const node = opts.node;
  const how = r.wipedDir ? `restarted on a wiped disk (${r.wipedDir})` : 'restarted with its data';
  const repairs = r.repairs;
  const rows: [string, string, string][] = [
    [
      'time to detect',
      s(r.detectS),
      `from kill -9 until GET /api/cluster showed ${node} not online; offline after ${s(r.offlineS)}`,
    ],
    ['failed requests', String(tally.failures.length), 'must be 0'],
    [
      'requests made',
      String(tally.requests),
      `${tally.downloads} downloads (every body's sha256 checked), ${tally.uploads} uploads`,
    ],
    [
      'checked while down',
      `${r.checkedWhileDown} files`,
      `every file stored so far, downloaded while ${node} was down`,
    ],
    [
      'uploads while down',
      String(r.uploadsWhileDown),
      `accepted while ${node} was down (two copies; the third is a repair)`,
    ],
    [
      'uploads short of a copy',
      String(r.uploadsShort),
      `answered with a copy missing (${node} down, or back but not yet seen online)`,
    ],
    [
      'time to full redundancy',
      s(r.redundancyS),
      'from the restart until under_replicated was 0 and every copy was on its disk',
    ],
    [
      'repaired',
      repairs ? `${repairs.done} copies, ${mb(repairs.bytes)}` : 'unknown (stats reset)',
      'repairs.done and repairs.bytes of /api/cluster, during the drill',
    ],
    [
      'files',
      `${r.allFiles}`,
      `${r.firstFiles} before the kill, ${r.allFiles - r.firstFiles} by the traffic`,
    ],
    [
      `${node} now`,
      r.restarted ? `pid ${r.restarted.pid}` : 'NOT RUNNING',
      r.restarted ? `log: ${r.restarted.log}` : `start it: npm run storage-node -- --id ${node}`,
    ],
  ];
  const out = [
    '',
    `Trove failover drill, ${r.startedAt.toISOString()}: kill -9 ${node}, ${how}`,
    `${opts.files} files, ${opts.concurrency} clients of traffic throughout`,
    '',
    ...table(rows),
    '',
  ];
  const problems = tally.failures.length + r.losses.length;
  if (problems === 0) {
    out.push('PASS: no failed request, no file lost, three copies of every file again.');
    return out.join('\n');
  }
  out.push(
    `FAIL: ${tally.failures.length} failed request(s), ${r.losses.length} loss(es) or missed step(s):`,
  );
  for (const line of [...r.losses, ...tally.failures].slice(0, 50)) out.push(`  - ${line}`);
  if (problems > 50) out.push(`  … and ${problems - 50} more (printed above as they happened)`);
  return out.join('\n');
}
