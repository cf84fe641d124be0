// The profile (--profile, --only profile): Switchboard on W1 100 pairs, 64 B,
// window 10 or --profile-window, under node --cpu-prof and, when it works, perf.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { perfMarkdown, summarizePerf, type PerfSummary } from '../perf-summary';
import { profileMarkdown, summarizeProfile, type ProfileSummary } from '../profile-summary';
import { protocolArgs, runLoadgen, type Measurement } from './loadgen';
import type { Options } from './options';
import { OUT, ROOT } from './paths';
import { Child } from './processes';
import { fmt } from './format';
import { startSwitchboard } from './systems';
import type { TokenFiles } from './tokens';

export interface ProfileOutput {
  md: string;
  cpuprofile: ProfileSummary;
  perf?: PerfSummary;
}

function perfWorks(): boolean {
  try {
    execFileSync('perf', ['record', '-q', '-o', '/dev/null', '--', 'true'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * Two runs of the same workload: one under `node --cpu-prof` (JavaScript view), one under
 * `perf record -g` with `--perf-basic-prof` (everything: V8 runtime, GC, kernel), when perf works.
 */
export async function profileSwitchboard(o: Options, tokens: TokenFiles): Promise<ProfileOutput> {
  const dir = path.join(OUT, 'profile');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const durationS = o.quick ? 3 : 5;
  const args = (port: number) => [
    ...['--mode', 'relay', '--port', String(port), '--count', '100', '--window', String(o.profileWindow), '--size', '64'],
    ...['--warmup', '1', '--duration', String(durationS), '--settle-ms', '0'],
    ...protocolArgs('switchboard', 'relay', tokens),
  ];
  const title = `Switchboard, W1 100 pairs, window ${o.profileWindow}, 64 B`;

  const server = await startSwitchboard('sb-cpuprof', undefined, ['--cpu-prof', '--cpu-prof-dir', dir]);
  let result: Measurement;
  try {
    result = await runLoadgen(args(server.port), [server], 120);
  } finally {
    await server.child.stop(15_000); // a graceful exit writes the profile (DRAIN_SPREAD_MS=0: at once)
  }
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (file === undefined) throw new Error('node --cpu-prof wrote no profile');
  const cpuprofile = summarizeProfile(path.join(dir, file), ROOT);
  const parts = [
    profileMarkdown(cpuprofile, `${title}, node --cpu-prof: ${fmt(Number(result.msgs_per_s), 'msg/s')} msg/s (bench/out/profile/${file})`),
    'The V8 profile sees JavaScript frames only: native work done on behalf of a frame ' +
      '(V8 JSON and string runtime, GC, the kernel send path) is charged to the last JavaScript frame, ' +
      'so a native call such as uWS `send` can look larger than it is. The perf view below counts everything.',
    '',
  ];
  process.stderr.write(`cpu profile written to bench/out/profile/${file}\n`);

  let perf: PerfSummary | undefined;
  if (perfWorks()) {
    const data = path.join(dir, 'perf.data');
    // --perf-basic-prof names JIT frames for perf (/tmp/perf-<pid>.map) and makes V8 open a log file: keep it in bench/out.
    const v8log = [`--logfile=${path.join(dir, 'v8.log')}`, '--no-logfile-per-isolate'];
    const traced = await startSwitchboard('sb-perf', undefined, ['--perf-basic-prof', ...v8log]);
    let recorder: Child | undefined;
    try {
      const start = () => {
        recorder = new Child('perf', 'perf', ['record', '-q', '-F', '999', '-g', '-p', String(traced.child.pid), '-o', data, '--', 'sleep', String(durationS)], {
          PATH: process.env.PATH,
        });
      };
      result = await runLoadgen(args(traced.port), [traced], 120, start);
      await recorder?.exited;
      perf = summarizePerf(data);
      parts.push(perfMarkdown(perf, `${title}, perf record -g (measured window): ${fmt(Number(result.msgs_per_s), 'msg/s')} msg/s (bench/out/profile/perf.data)`));
    } finally {
      await recorder?.stop();
      await traced.child.stop(15_000);
      rmSync(`/tmp/perf-${traced.child.pid}.map`, { force: true });
    }
  } else parts.push('(perf is not available here: no native profile.)', '');
  return { md: parts.join('\n'), cpuprofile, perf };
}
