// Prints scenario results as one table: a row per figure, a column per scenario.
import type { Figures } from './ledger';
import type { ScenarioResult } from './scenarios';

const ms = (v: number | undefined) => (v === undefined ? 'NOT within bound' : `${Math.round(v)} ms`);
const counts = <K>(map: Map<K, number>) => [...map].map(([k, n]) => `${String(k)}=${n}`).join(' ') || '-';

const FIGURE_ROWS: (keyof Figures)[] = [
  'sent',
  'acked',
  'queued',
  'delivered',
  'duplicated',
  'reordered',
  'lost',
  'lostQueued',
  'lostInKilledNode',
  'unavailable',
  'peer_offline',
  'peerOfflineUndetected',
  'rate_limited',
  'otherErrors',
  'errorButDelivered',
  'unanswered',
  'cut',
  'cutDelivered',
  'answeredLate',
  'maxAnswerMs',
  'strayDeliveries',
  'strayAnswers',
];

export function rows(r: ScenarioResult): [string, string][] {
  const out: [string, string][] = FIGURE_ROWS.map((k) => [k, String(r.figures[k] === '' ? '-' : r.figures[k])]);
  const c = r.clients;
  out.push(
    ['reconnects', String(c.reconnects)],
    ['resumed', String(c.resumed)],
    ['resumedOtherSession', String(c.resumedOtherSession)],
    ['refused (reason)', counts(c.refused)],
    ['closes (code)', counts(c.closes)],
    ['draining frames', String(c.draining)],
    ['welcomeTimeouts', String(c.welcomeTimeouts)],
    ['errorsWithoutId', counts(c.errorsWithoutId)],
  );
  for (const rec of r.recoveries) out.push([`recovery: ${rec.event}`, `${rec.clients} clients, back in ${ms(rec.backMs)}${rec.exit === undefined ? '' : `, exit ${rec.exit}`}`]);
  if ('offlineSeenMs' in r) out.push(['watchers saw offline after', ms(r.offlineSeenMs)]);
  if (r.trafficOfflinePushes !== undefined) out.push(['offline pushes for traffic users', String(r.trafficOfflinePushes)]);
  if (r.failover !== undefined) out.push(['failover by', r.failover === 'command' ? 'SENTINEL FAILOVER' : 'SIGKILL of the master']);
  if (r.promotedMs !== undefined) out.push(['replica promoted after', ms(r.promotedMs)]);
  if ('allUpMs' in r) out.push(['HAProxy all UP again after', ms(r.allUpMs)]);
  for (const [label, n] of r.nodeProblems) out.push([`node log: ${label.slice(0, 70)}`, String(n)]);
  out.push(['settle', ms(r.settleMs)], ['scenario duration', ms(r.durationMs)]);
  if (r.lostSample.length > 0) out.push(['lost (sample)', r.lostSample.slice(0, 4).join(', ')]);
  return out;
}

export function table(results: readonly ScenarioResult[]): string {
  const labels: string[] = [];
  const byLabel = new Map<string, string[]>();
  results.forEach((r, col) => {
    for (const [label, value] of rows(r)) {
      if (!byLabel.has(label)) {
        labels.push(label);
        byLabel.set(label, results.map(() => ''));
      }
      (byLabel.get(label) as string[])[col] = value;
    }
  });
  // Rows only some scenarios have sit before the closing ones, whichever column brought them.
  const closing = ['settle', 'scenario duration', 'lost (sample)'];
  labels.sort((a, b) => Number(closing.includes(a)) - Number(closing.includes(b)) || (closing.indexOf(a) - closing.indexOf(b)));
  const header = ['figure', ...results.map((r) => r.name)];
  const body = labels.map((l) => [l, ...(byLabel.get(l) as string[])]);
  const widths = header.map((_, i) => Math.max(...[header, ...body].map((row) => (row[i] ?? '').length)));
  const line = (row: string[]) => `| ${row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}
