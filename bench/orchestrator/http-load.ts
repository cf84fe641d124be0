// W6's load: Debian's `wrk` (C, epoll, one thread) for small GETs over
// keep-alive connections at a fixed concurrency for a fixed time, and `curl`
// for a download. Both are native and spend far less per request than any
// system measured here, so the servers, not the load, set the figures (the
// diagnostics show wrk's CPU next to the servers').
//
// wrk knows when its window starts and ends but not the servers' CPU, so a
// Sampler polls the named processes (and wrk or curl) over the run.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Measurement } from './loadgen';
import { Child, parseJson } from './processes';
import { Sampler } from './sampler';

/** Prints wrk's summary as one JSON line (latencies in µs, from wrk's histogram of every request). */
const WRK_REPORT = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,"connect_errors":%.0f,"read_errors":%.0f,"write_errors":%.0f,' ..
    '"status_errors":%.0f,"timeouts":%.0f,"p50_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,"p999_us":%.0f,"max_us":%.0f}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max))
end
`;

/** Writes wrk's reporting script into `dir`; returns its path. */
export function writeWrkScript(dir: string): string {
  const file = path.join(dir, 'wrk-report.lua');
  writeFileSync(file, WRK_REPORT);
  return file;
}

function cpuFigures(sampled: ReturnType<Sampler['stop']>, loadgen: string): Measurement {
  const m: Measurement = {};
  for (const [name, s] of Object.entries(sampled)) m[name === loadgen ? 'loadgen_cpu' : `cpu_${name}`] = s.cpu;
  return m;
}

export interface WrkRun {
  url: string;
  script: string;
  connections: number;
  /** Whole seconds: wrk takes no fractions. */
  durationS: number;
  /** Processes whose CPU is reported as `cpu_<name>`. */
  servers: Record<string, number>;
}

/**
 * One wrk run (one thread, `connections` keep-alive connections). Fails when a
 * response was not 2xx/3xx or a socket failed for more than 0.1 % of requests:
 * fast error answers would pass for throughput.
 */
export async function runWrk(run: WrkRun): Promise<Measurement> {
  const args = ['-t1', `-c${run.connections}`, `-d${run.durationS}s`, '--timeout', '10s', '-s', run.script, run.url];
  const sampler = new Sampler(run.servers);
  const child = new Child('wrk', 'wrk', args, { PATH: process.env.PATH });
  sampler.add('wrk', child.pid);
  let result: Record<string, unknown> | undefined;
  child.onLine((line) => (result = parseJson(line) ?? result));
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), (run.durationS + 20) * 1000);
  const code = await child.exited;
  clearTimeout(timer);
  const sampled = sampler.stop();
  if (result === undefined) throw new Error(`wrk exited (${code}) without a result; stderr: ${child.stderr}`);
  const n = (key: string) => (typeof result?.[key] === 'number' ? result[key] : NaN);
  const requests = n('requests');
  const socketErrors = n('connect_errors') + n('read_errors') + n('write_errors') + n('timeouts');
  const errors = n('status_errors') + socketErrors;
  if (!(requests > 0)) throw new Error(`wrk completed no request (errors: ${errors})`);
  if (errors > requests / 1000) throw new Error(`${n('status_errors')} non-2xx/3xx answers and ${socketErrors} socket errors in ${requests} requests`);
  return {
    req_per_s: requests / (n('duration_us') / 1e6),
    p50_us: n('p50_us'),
    p90_us: n('p90_us'),
    p99_us: n('p99_us'),
    p999_us: n('p999_us'),
    requests,
    errors,
    ...cpuFigures(sampled, 'wrk'),
  };
}

export interface DownloadRun {
  url: string;
  bytes: number;
  /** Processes whose CPU is reported as `cpu_<name>`. */
  servers: Record<string, number>;
  /** Of these, the ones whose peak RSS growth is reported as `rss_<name>_mib`. */
  rssOf: string[];
}

/** One download with curl to /dev/null; MB/s with 1 MB = 10^6 bytes. */
export async function runDownload(run: DownloadRun): Promise<Measurement> {
  const sampler = new Sampler(run.servers);
  const args = ['-sS', '-o', '/dev/null', '--max-time', '120', '-w', '{"status":%{http_code},"bytes":%{size_download},"seconds":%{time_total}}\\n', run.url];
  const child = new Child('curl', 'curl', args, { PATH: process.env.PATH });
  sampler.add('curl', child.pid);
  let result: Record<string, unknown> | undefined;
  child.onLine((line) => (result = parseJson(line) ?? result));
  const code = await child.exited;
  const sampled = sampler.stop();
  if (result === undefined || code !== 0) throw new Error(`curl exited (${code}); stderr: ${child.stderr}`);
  const { status, bytes, seconds } = result;
  if (status !== 200 || bytes !== run.bytes || typeof seconds !== 'number') throw new Error(`download: status ${String(status)}, ${String(bytes)} of ${run.bytes} bytes`);
  const m: Measurement = { mb_per_s: run.bytes / seconds / 1e6, seconds, ...cpuFigures(sampled, 'curl') };
  for (const name of run.rssOf) m[`rss_${name}_mib`] = (sampled[name]?.rssGrowth ?? NaN) / 2 ** 20;
  return m;
}
