// W8: reconnect storm (issue 16). Every client of a node that drains comes
// back on another node, while that node carries other traffic:
//
//   loadgen storm ── K clients ──► node A ── SIGTERM: draining frames at once, 1012s spread over DRAIN_SPREAD_MS
//         └─────── reconnect: fresh JWT, ?resume= ──► node B ◄── loadgen relay: 100 pairs, open loop, both ends on B
//                                     (A and B share one redis-server)
//
// The storm loadgen (bench/loadgen.c, mode storm) measures the storm itself:
// from the first draining frame it sees to the last welcome from B. The relay
// loadgen's measured window starts just before A gets SIGTERM and lasts
// DRAIN_SPREAD_MS + 3 s, so its latency is B's for other traffic during the
// storm. Switchboard only (the raw baseline has no drain); a fresh pair of
// nodes per run.
import { fmt } from './format';
import { protocolArgs, runLoadgen, type Measurement } from './loadgen';
import type { MetricSpec, OwnRoundsGroup, Workload, WorkloadResult } from './model';
import type { Options } from './options';
import { LOADGEN } from './paths';
import { Child, parseJson } from './processes';
import { Sampler } from './sampler';
import { evaluate } from './statistics';
import { ensureRedis, redisPids, startSwitchboard, type Server } from './systems';
import { writeStormTokens, type TokenFiles } from './tokens';

/** Node A's DRAIN_SPREAD_MS: SPEC §6.3's default, what a deployment drains with. */
const SPREAD_MS = 5000;
/** Issue 16: all clients back within DRAIN_SPREAD_MS + 2 s, none lost, B's p99 for other traffic ≤ 50 ms. */
const BACK_WITHIN_MS = SPREAD_MS + 2000;
const TRAFFIC = { pairs: 100, rate: 2000, size: 64, warmupS: 1, durationS: SPREAD_MS / 1000 + 3 };
/** Node A's SHUTDOWN_TIMEOUT_MS (SPEC's default): the drain is never cut short by it. */
const SHUTDOWN_TIMEOUT_MS = 30_000;

/** SIGTERM to SIGKILL when the nodes are stopped after a run. */
const STOP_GRACE_MS = 20_000;

type StormTokens = ReturnType<typeof writeStormTokens>;

function spec(clients: number): Pick<Workload, 'id' | 'title' | 'params' | 'metrics'> {
  const metrics: MetricSpec[] = [
    { key: 'back_ms', label: 'all back (first draining frame → last welcome on B)', unit: 'ms', target: { kind: 'max', value: BACK_WITHIN_MS } },
    { key: 'lost_clients', label: 'clients lost (never back)', unit: 'count', target: { kind: 'max', value: 0 } },
    { key: 'connects_per_s', label: 'connects/s on B (first reconnect → last welcome)', unit: 'conn/s' },
    { key: 'failures', label: 'failed reconnect attempts (retried)', unit: 'count' },
    { key: 'p50_us', label: "B's p50 latency, other traffic", unit: 'µs' },
    { key: 'p99_us', label: "B's p99 latency, other traffic", unit: 'µs', target: { kind: 'max', value: 50_000 } },
    { key: 'p999_us', label: "B's p99.9 latency, other traffic", unit: 'µs' },
  ];
  return {
    id: `W8-storm-${clients}`,
    title: `W8 reconnect storm, ${clients.toLocaleString('en-US')} clients A → B (drain spread ${SPREAD_MS / 1000} s), ${TRAFFIC.rate.toLocaleString('en-US')} msg/s on B`,
    params: { clients, drain_spread_ms: SPREAD_MS, traffic_pairs: TRAFFIC.pairs, traffic_rate: TRAFFIC.rate, traffic_size: TRAFFIC.size },
    metrics,
  };
}

function stormArgs(a: Server, b: Server, clients: number, t: StormTokens): string[] {
  return [
    ...['--mode', 'storm', '--port', String(a.port), '--port2', String(b.port), '--count', String(clients), '--sources', '8'],
    ...['--recv-path', '/ws?token={tok}', '--recv-tokens', t.first, '--reconnect-tokens', t.reconnect, '--ready-marker', '"type":"welcome"'],
    // The SDK resumes after 1012 (src/client/close-policy.ts), so B also claims each session from Redis.
    '--resume',
    ...['--storm-timeout', String(SPREAD_MS / 1000 + 30), '--setup-timeout', '90', '--hold-s', '120'],
  ];
}

function trafficArgs(b: Server, o: Options, tokens: TokenFiles): string[] {
  return [
    ...['--mode', 'relay', '--port', String(b.port), '--port2', String(b.port), '--count', String(TRAFFIC.pairs), '--size', String(TRAFFIC.size)],
    ...['--rate', String(TRAFFIC.rate), '--warmup', String(TRAFFIC.warmupS), '--duration', String(TRAFFIC.durationS), '--settle-ms', String(o.settleMs)],
    ...protocolArgs('switchboard', 'relay', tokens),
  ];
}

/** Resolves with the child's exit code, or undefined if it has not exited within ms. */
function exitWithin(child: Child, ms: number): Promise<number | null | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  return Promise.race([child.exited, timeout]).finally(() => clearTimeout(timer));
}

/** One run: a fresh pair of nodes, K clients on A, the relay on B, SIGTERM to A once the relay measures. */
async function stormRun(o: Options, tokens: TokenFiles, stormTokens: StormTokens, run: number): Promise<Measurement> {
  const redisUrl = await ensureRedis();
  // A prefix per run: what one run's sessions leave in Redis (resumable for RESUME_WINDOW_S) is not the next run's.
  const prefix = { REDIS_PREFIX: `w8-${run}-${Date.now()}:` };
  const nodeA = await startSwitchboard('switchboard-a', redisUrl, [], { ...prefix, DRAIN_SPREAD_MS: String(SPREAD_MS), SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS) });
  let nodeB: Server | undefined;
  let storm: Child | undefined;
  let sampler: Sampler | undefined;
  try {
    const b = await startSwitchboard('switchboard-b', redisUrl, [], prefix);
    nodeB = b;
    storm = new Child('loadgen-storm', LOADGEN, stormArgs(nodeA, b, o.stormClients, stormTokens), { PATH: process.env.PATH }, 'pipe');
    const stormLine = (key: string) => (line: string) => {
      const rec = parseJson(line);
      if (typeof rec?.error === 'string') throw new Error(`loadgen storm: ${rec.error}`);
      return rec !== undefined && key in rec ? rec : undefined;
    };
    const ready = await storm.waitFor(stormLine('ready'), 100_000, 'ready line');
    // Listening for the result from now on: it may come before the relay's (a short storm).
    const result = storm.waitFor(stormLine('back'), 120_000, 'storm result');
    result.catch(() => undefined); // awaited below; a rejection before then is not unhandled

    // CPU of each process from SIGTERM to the storm's result (node A's until it exits): what the storm costs whom.
    const redisPid = redisPids()[0];
    const stormLoadgen = storm;
    const stormCpu = result.then(() => sampler?.stop());
    stormCpu.catch(() => undefined);
    let sigtermAt = NaN;
    let aExitedAt = NaN;
    const traffic = await runLoadgen(trafficArgs(b, o, tokens), [b], 120, () => {
      sigtermAt = performance.now();
      nodeA.child.proc.kill('SIGTERM');
      void nodeA.child.exited.then(() => (aExitedAt = performance.now()));
      sampler = new Sampler(
        { node_a: nodeA.child.pid, node_b: b.child.pid, storm_loadgen: stormLoadgen.pid, ...(redisPid === undefined ? {} : { redis: redisPid }) },
        100,
      );
    });
    const s = await result;
    // cpu_<name> keys are listed in the report's notes; Redis has a column of its own (redis_cpu).
    const cpu = Object.fromEntries(Object.entries((await stormCpu) ?? {}).map(([name, sampled]) => [name === 'redis' ? 'redis_cpu' : `cpu_${name}`, sampled.cpu]));
    // A exits by itself (exit 0) once the drain is over and it has left Redis (SPEC §6.3).
    const aCode = await exitWithin(nodeA.child, SHUTDOWN_TIMEOUT_MS + 10_000);
    const num = (key: string) => (typeof s[key] === 'number' ? s[key] : NaN);
    return {
      ...traffic,
      // The relay's `lost` stays `lost` (messages); the storm's is clients.
      lost_clients: num('lost'),
      ...Object.fromEntries(
        ['clients', 'back', 'failures', 'resumed', 'draining_frames', 'closed_1012', 'closed_other', 'dropped_after_back', 'back_ms', 'closes_ms', 'first_reconnect_ms', 'connects_per_s']
          .concat(['connect_p50_ms', 'connect_p99_ms', 'connect_max_ms'])
          .map((key) => [key, num(key)]),
      ),
      storm_setup_s: Number(ready.setup_s),
      storm_first_error: typeof s.first_error === 'string' ? s.first_error : '',
      ...cpu,
      node_a_exit_code: aCode === undefined ? 'still running' : aCode === null ? 'signal' : aCode,
      node_a_exit_s: (aExitedAt - sigtermAt) / 1000,
    };
  } finally {
    sampler?.stop();
    // The storm loadgen holds its clients on B until its stdin closes; then the nodes stop (A only if it has not
    // exited). B has its K sessions going away to record in Redis first: more than stop()'s default 5 s of grace.
    if (storm !== undefined) {
      storm.proc.stdin?.end();
      if ((await exitWithin(storm, 10_000)) === undefined) storm.proc.kill('SIGKILL');
    }
    await Promise.all([nodeB?.child.stop(STOP_GRACE_MS), nodeA.child.stop(STOP_GRACE_MS)]);
  }
}

function summary(m: Measurement): string {
  const n = (key: string) => (typeof m[key] === 'number' ? m[key] : NaN);
  const cpu = (key: string) => n(key).toFixed(2);
  return (
    `back ${n('back')}/${n('clients')} in ${fmt(n('back_ms'), 'ms')} (A's closes over ${fmt(n('closes_ms'), 'ms')}), ` +
    `${fmt(n('connects_per_s'), 'conn/s')} conn/s on B, lost ${n('lost_clients')}, failures ${n('failures')}, resumed ${n('resumed')}, ` +
    `connect to welcome p50 ${fmt(n('connect_p50_ms'), 'ms')}, p99 ${fmt(n('connect_p99_ms'), 'ms')}; ` +
    `B's other traffic ${fmt(n('msgs_per_s'), 'msg/s')} msg/s: p50 ${fmt(n('p50_us'), 'µs')}, p99 ${fmt(n('p99_us'), 'µs')}, p99.9 ${fmt(n('p999_us'), 'µs')}, lost ${n('lost')}; ` +
    `CPU over the storm: node A ${cpu('cpu_node_a')}, node B ${cpu('cpu_node_b')}, Redis ${cpu('redis_cpu')}, storm loadgen ${cpu('cpu_storm_loadgen')}; ` +
    `node A exited ${String(m.node_a_exit_code)} after ${n('node_a_exit_s').toFixed(1)} s`
  );
}

export function stormGroup(): OwnRoundsGroup {
  return {
    name: 'W8',
    title: 'reconnect storm',
    run: async (o, log, tokens) => {
      const w = spec(o.stormClients);
      const stormTokens = writeStormTokens(o.stormClients);
      const runs: WorkloadResult['runs'] = { raw: [], switchboard: [] };
      for (let run = 1; run <= o.runs; run++) {
        let m: Measurement | { failed: string };
        try {
          m = await stormRun(o, tokens, stormTokens, run);
        } catch (error) {
          m = { failed: error instanceof Error ? error.message : String(error) };
        }
        runs.switchboard.push(m);
        log(`${w.title} — switchboard run ${run}/${o.runs}: ${'failed' in m ? `FAILED: ${m.failed}` : summary(m)}`);
      }
      return [evaluate(w, 'W8', runs)];
    },
  };
}
