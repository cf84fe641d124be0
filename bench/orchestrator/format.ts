// How figures are written in the bench's log lines and results: a value in
// its unit, and a measurement in one line.
import type { Measurement } from './loadgen';
import type { MetricSpec } from './model';

export function fmt(value: number, unit: MetricSpec['unit']): string {
  if (!Number.isFinite(value)) return '—';
  switch (unit) {
    case 'µs':
      return value >= 10_000 ? `${(value / 1000).toFixed(1)} ms` : value >= 1000 ? `${(value / 1000).toFixed(2)} ms` : value >= 100 ? `${Math.round(value)} µs` : `${value.toFixed(1)} µs`;
    case 'ms':
      return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${Math.round(value)} ms`;
    case 'count':
      return Number.isInteger(value) ? value.toLocaleString('en-US') : value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(2);
    case 'B':
      return `${Math.round(value).toLocaleString('en-US')} B`;
    case 'MiB':
      return `${value.toFixed(1)} MiB`;
    default:
      return value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(1);
  }
}

export function describe(m: Measurement): string {
  const parts: string[] = [];
  if (typeof m.setups_per_s === 'number') parts.push(`${fmt(m.setups_per_s, 'setup/s')} setups/s`);
  if (typeof m.msgs_per_s === 'number') parts.push(`${fmt(m.msgs_per_s, 'msg/s')} msg/s`);
  if (typeof m.req_per_s === 'number') parts.push(`${fmt(m.req_per_s, 'req/s')} req/s`);
  if (typeof m.mb_per_s === 'number') parts.push(`${fmt(m.mb_per_s, 'MB/s')} MB/s`);
  if (typeof m.p50_us === 'number') parts.push(`p50 ${fmt(m.p50_us, 'µs')}`);
  if (typeof m.p99_us === 'number') parts.push(`p99 ${fmt(m.p99_us, 'µs')}`);
  if (typeof m.rss_per_conn === 'number') parts.push(`${fmt(m.rss_per_conn, 'B')}/conn`);
  if (typeof m.connects_per_s === 'number') parts.push(`${fmt(m.connects_per_s, 'conn/s')} conn/s`);
  const cpu = [m.server_cpu_0, m.server_cpu_1].filter((v): v is number => typeof v === 'number').map((v) => v.toFixed(2));
  if (cpu.length > 0) parts.push(`server cpu ${cpu.join('+')}`);
  const named = (prefix: string, suffix: string, show: (v: number) => string) =>
    Object.entries(m).flatMap(([k, v]) => (k.startsWith(prefix) && k.endsWith(suffix) && typeof v === 'number' ? [`${k.slice(prefix.length, k.length - suffix.length)} ${show(v)}`] : []));
  const cpus = named('cpu_', '', (v) => v.toFixed(2));
  if (cpus.length > 0) parts.push(`cpu ${cpus.join(', ')}`);
  const rss = named('rss_', '_mib', (v) => `+${v.toFixed(1)} MiB`);
  if (rss.length > 0) parts.push(`rss ${rss.join(', ')}`);
  if (typeof m.redis_cpu === 'number') parts.push(`redis cpu ${m.redis_cpu.toFixed(2)}`);
  if (typeof m.loadgen_cpu === 'number') parts.push(`loadgen cpu ${m.loadgen_cpu.toFixed(2)}`);
  if (typeof m.lost === 'number' && m.lost > 0) parts.push(`lost ${m.lost}`);
  if (typeof m.setups_failed === 'number' && m.setups_failed > 0) parts.push(`setups failed ${m.setups_failed}`);
  if (typeof m.errors === 'number' && m.errors > 0) parts.push(`errors ${m.errors} (${String(m.first_error)})`);
  return parts.join(', ');
}
