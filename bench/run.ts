// The benchmark orchestrator (issue 4): runs every workload against the raw
// uWebSockets.js baseline (A, bench/baseline/raw-relay.mjs) and Switchboard (B),
// alternating A B A B A B in one invocation, and reports Switchboard as ratios
// to the baseline measured in the same run (the machines are shared and noisy:
// only same-run ratios mean anything; never put timings into tests).
//
//   npm run bench                 # 3 runs per system, medians with min–max
//   npm run bench -- --quick      # 1 run, short durations (< 3 min)
//   npm run bench -- --only W1,W3 # some workload groups
//   npm run bench -- --profile    # also profile Switchboard on W1 (node --cpu-prof) and summarise it
//   npm run bench -- --only profile
//   npm run bench -- --profile-w6 # profile the nodes and the sidecar on W6's tunnel paths
//
// bench/run.sh builds the project and bench/out/loadgen (C, epoll) first.
// Writes bench/out/results.json and bench/out/results.md.
//
// The pieces live in bench/orchestrator/ (see "Pieces" in bench/README.md):
// options, paths, processes, systems, tokens, loadgen, workloads, rounds,
// statistics, report, profile. This file ties them together.
import { existsSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import { parseOptions } from './orchestrator/options';
import { LOADGEN, OUT, SWITCHBOARD_CLI } from './orchestrator/paths';
import { killAll } from './orchestrator/processes';
import { profileSwitchboard, type ProfileOutput } from './orchestrator/profile';
import { writeResults } from './orchestrator/report';
import { runGroup } from './orchestrator/rounds';
import type { WorkloadResult } from './orchestrator/model';
import { stopRedisCluster } from './orchestrator/redis-cluster';
import { stopRedis, useUncorkedBaseline } from './orchestrator/systems';
import { profileTunnel } from './orchestrator/tunnel-profile';
import { writeTokens } from './orchestrator/tokens';
import { groups } from './orchestrator/workloads';

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  if (o.uncorkedBaseline) useUncorkedBaseline();
  if (!existsSync(LOADGEN)) throw new Error(`${LOADGEN} is missing; run bench/run.sh (it compiles bench/loadgen.c)`);
  if (!existsSync(SWITCHBOARD_CLI)) throw new Error(`${SWITCHBOARD_CLI} is missing; run npm run build`);
  mkdirSync(OUT, { recursive: true });
  const started = new Date();
  const loadStart = os.loadavg()[0]?.toFixed(2) ?? '?';
  const t0 = performance.now();
  const log = (line: string) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
  const tokens = writeTokens(Math.max(o.idleConns, 1000));
  const selected = groups(o).filter((g) => o.groups === undefined || o.groups.has(g.name));
  log(`${o.quick ? 'quick' : 'full'} run: ${o.runs} run(s) per system, groups ${selected.map((g) => g.name).join(' ') || '(none)'}`);

  const results: WorkloadResult[] = [];
  try {
    for (const group of selected) results.push(...(await ('run' in group ? group.run(o, log, tokens) : runGroup(group, o, tokens, log))));
  } finally {
    await Promise.all([stopRedis(), stopRedisCluster()]);
  }

  let profile: ProfileOutput | undefined;
  if (o.profile) {
    log('profiling Switchboard on W1 (node --cpu-prof)');
    profile = await profileSwitchboard(o, tokens);
  }

  let tunnelProfile: string | undefined;
  if (o.profileW6) {
    log('profiling the nodes and the sidecar on W6 (node --cpu-prof)');
    try {
      tunnelProfile = await profileTunnel(o, log);
    } finally {
      await stopRedis();
    }
  }

  const took = (performance.now() - t0) / 1000;
  const meta = {
    mode: o.quick ? 'quick' : 'full',
    runs: o.runs,
    warmup_s: o.warmupS,
    duration_s: o.durationS,
    w6: `${o.w6Connections} connections, warm-up ${o.w6WarmupS} s, measured ${o.w6DurationS} s per path`,
    started: started.toISOString(),
    took_s: Math.round(took),
    load_start: loadStart,
    load_end: os.loadavg()[0]?.toFixed(2) ?? '?',
    uncorked: o.uncorkedBaseline,
  };
  const md = writeResults(results, meta, profile, tunnelProfile);
  process.stdout.write(md);
  log(`done in ${Math.round(took)} s: bench/out/results.md, bench/out/results.json`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    killAll();
    process.exit(1);
  },
);
