// The report: number formatting, the one-line summary of a run for the log,
// the machine description, and bench/out/results.md and results.json.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Measurement } from './loadgen';
import { OUT } from './paths';
import type { ProfileOutput } from './profile';
import { fmt } from './format';
import type { MetricSpec, Stat, Target, WorkloadResult } from './model';
import { median } from './statistics';
import { SYSTEM_LABEL, SYSTEMS } from './systems';

/** `ran`: some run succeeded, so a missing figure does not apply (a back end has no node RSS) rather than failed. */
function fmtStat(s: Stat | undefined, unit: MetricSpec['unit'], ran: boolean): string {
  if (s === undefined) return ran ? '—' : 'failed';
  if (s.n === 1) return fmt(s.median, unit);
  return `${fmt(s.median, unit)} (${fmt(s.min, unit)}–${fmt(s.max, unit)})`;
}

function targetText(t: Target | undefined, unit: MetricSpec['unit']): string {
  if (t === undefined) return '';
  switch (t.kind) {
    case 'ratio':
      return `≥ ${t.min}×`;
    case 'ratioAtMost':
      return `≤ ${t.max}×`;
    case 'max':
      return `≤ ${fmt(t.value, unit)}`;
    case 'overBaseline':
      return `≤ baseline + ${fmt(t.value, unit)}`;
  }
}


function machine(): Record<string, string | number> {
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const version = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args).toString().split('\n')[0]?.trim() ?? '';
    } catch {
      return 'unknown';
    }
  };
  return {
    nproc: os.availableParallelism(),
    cpu: /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown',
    memory_gib: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    redis: version('redis-server', ['--version']),
    gcc: version('gcc', ['--version']),
    // W6's tools print their versions on stderr, or exit non-zero after printing them.
    nginx: version('sh', ['-c', 'nginx -v 2>&1 || true']) || 'no nginx',
    wrk: version('sh', ['-c', "wrk -v 2>&1 | head -1 | cut -d' ' -f1-2"]) || 'no wrk',
    fd_limit: version('sh', ['-c', 'ulimit -n']),
  };
}

function markdown(results: WorkloadResult[], meta: Record<string, unknown>, m: Record<string, string | number>, profile?: string, tunnelProfile?: string): string {
  const lines: string[] = [
    '# Switchboard benchmark',
    '',
    `${String(meta.mode)} run, ${String(meta.runs)} run(s) per system alternating baseline/switchboard, warm-up ${String(meta.warmup_s)} s, ` +
      `measured ${String(meta.duration_s)} s per run (W6: ${String(meta.w6)}); started ${String(meta.started)}, took ${String(meta.took_s)} s.`,
    '',
    `Machine: ${m.nproc} CPUs (${m.cpu}), ${m.memory_gib} GiB, ${m.kernel}; node ${m.node}; ${m.redis}; ${m.gcc}; ${m.nginx}; ${m.wrk}; fd limit ${m.fd_limit}; ` +
      `load average ${String(meta.load_start)} at the start, ${String(meta.load_end)} at the end (other work on a shared machine shows here).`,
    '',
    `Baseline: bench/baseline/raw-relay.mjs (uWebSockets.js, no JSON, no auth; ${meta.uncorked === true ? 'each frame written at once (--uncorked-baseline)' : "a turn's frames per socket written corked at its end, as Switchboard's outbox does"}; two nodes: batched PUBLISH per destination per event-loop turn). ` +
      'Ratio = switchboard median / baseline median (for latency and memory, lower is better). ' +
      'Load: bench/loadgen.c (one epoll thread). ' +
      'W6 rows pair two HTTP paths measured in the same rounds and name their baseline in the title (nginx proxy_pass, or the back end direct); ' +
      'load: wrk (one thread, keep-alive) and curl.',
    '',
    '| workload | metric | baseline median (min–max) | switchboard median (min–max) | ratio | target | met? |',
    '|---|---|---:|---:|---:|---|:-:|',
  ];
  for (const r of results)
    for (const x of r.metrics) {
      const ran = (system: (typeof SYSTEMS)[number]) => r.runs[system].some((m) => !('failed' in m));
      const unit = x.unit as MetricSpec['unit'];
      // A workload with no runs of a system at all (W8: the baseline has no drain) shows "—", not "failed".
      const cell = (system: (typeof SYSTEMS)[number], s: Stat | undefined) => (r.runs[system].length === 0 ? '—' : fmtStat(s, unit, ran(system)));
      const met = x.met === undefined ? '' : x.met ? 'yes' : '**no**';
      lines.push(
        `| ${r.title} | ${x.label} | ${cell('raw', x.baseline)} | ${cell('switchboard', x.switchboard)} | ${x.ratio === undefined ? '—' : `${x.ratio.toFixed(2)}×`} | ${targetText(x.target, unit)} | ${met} |`,
      );
    }
  lines.push(
    '',
    '## Diagnostics',
    '',
    'Median CPU use during the measured window (1.0 = one core; the machine has ' +
      `${m.nproc}) of the server process(es) (two nodes: receiving node + sending node), of Redis and of the load generator. ` +
      'A server near 1.0 is saturated; a load generator near 1.0 means the baseline figure is a lower bound. ' +
      'Lost = messages that never arrived (the sender refilled its window after a stall).',
    '',
    '| workload | system | server CPU | Redis CPU | loadgen CPU | lost | errors | failed runs | notes |',
    '|---|---|---|---:|---:|---:|---:|---:|---|',
  );
  for (const r of results)
    for (const system of SYSTEMS) {
      if (r.runs[system].length === 0) continue; // not measured on this system (W8: Switchboard only)
      const ok = r.runs[system].filter((m): m is Measurement => !('failed' in m));
      const num = (key: string) => ok.flatMap((m) => (typeof m[key] === 'number' ? [m[key]] : []));
      const cpu = [0, 1]
        .map((i) => median(num(`server_cpu_${i}`)))
        .filter((v) => Number.isFinite(v))
        .map((v) => v.toFixed(2))
        .join(' + ');
      const lg = median(num('loadgen_cpu'));
      const rc = median(num('redis_cpu'));
      const sum = (key: string) => num(key).reduce((a, b) => a + b, 0);
      const failed = r.runs[system].length - ok.length;
      const notes: string[] = [];
      const before = median(num('rss_before_mb'));
      const after = median(num('rss_after_mb'));
      if (Number.isFinite(before)) notes.push(`RSS ${before.toFixed(0)} → ${after.toFixed(0)} MiB`);
      const setup = median(num('connects_per_s_setup'));
      if (Number.isFinite(setup)) notes.push(`opened at ${fmt(setup, 'conn/s')}/s`);
      const p999 = median(num('p999_us'));
      if (Number.isFinite(p999) && p999 > 0) notes.push(`p99.9 ${fmt(p999, 'µs')}`);
      const cpus = [...new Set(ok.flatMap((m) => Object.keys(m).filter((k) => k.startsWith('cpu_'))))];
      if (cpus.length > 0) notes.push(`CPU ${cpus.map((k) => `${k.slice(4)} ${median(num(k)).toFixed(2)}`).join(', ')}`);
      const connFailures = sum('failures');
      if (connFailures > 0) notes.push(`${connFailures} failed connects`);
      lines.push(
        `| ${r.title} | ${SYSTEM_LABEL[system]} | ${cpu === '' ? '—' : cpu} | ${Number.isFinite(rc) ? rc.toFixed(2) : '—'} | ${Number.isFinite(lg) ? lg.toFixed(2) : '—'} | ${sum('lost')} | ${sum('errors')} | ${failed} | ${notes.join('; ')} |`,
      );
    }
  const failures = results.flatMap((r) =>
    SYSTEMS.flatMap((s) => r.runs[s].flatMap((m, i) => ('failed' in m ? [`- ${r.title}, ${SYSTEM_LABEL[s]} run ${i + 1}: ${m.failed}`] : []))),
  );
  if (failures.length > 0) lines.push('', '## Failed runs', '', ...failures);
  if (profile !== undefined) lines.push('', '## Profile', '', profile);
  if (tunnelProfile !== undefined) lines.push('', '## Profile of W6', '', tunnelProfile);
  return `${lines.join('\n')}\n`;
}

/** Writes bench/out/results.json (every run's raw numbers) and bench/out/results.md; returns the markdown. */
export function writeResults(results: WorkloadResult[], meta: Record<string, unknown>, profile: ProfileOutput | undefined, tunnelProfile?: string): string {
  const m = machine();
  writeFileSync(path.join(OUT, 'results.json'), `${JSON.stringify({ meta, machine: m, workloads: results, profile: profile === undefined ? undefined : { cpuprofile: profile.cpuprofile, perf: profile.perf } }, null, 2)}\n`);
  const md = markdown(results, meta, m, profile?.md, tunnelProfile);
  writeFileSync(path.join(OUT, 'results.md'), md);
  return md;
}

