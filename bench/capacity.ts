// The capacity model (issue 16): how many nodes and Redis shards 100k, 1M and
// 10M connections need, from figures the bench measured, printed as markdown
// for docs/operations.md "Capacity".
//
//   npm run build --silent
//   node dist/bench/capacity.js [results.json …] [--pairs 1000] [--msg-interval-s 10] …
//   node dist/bench/capacity.js --write-doc docs/operations.md   # between its capacity.js markers
//
// Reads bench/out/results.json by default; several files (copies of earlier
// runs) pool their runs, and medians are taken over all of them. Needs the
// groups CAP (and CAPC for the Cluster), W4, and for the check W2 (W2C):
// `node dist/bench/run.js --quick --only W2,W2C,CAP,CAPC,W4`.
//
// Inputs, measured (Switchboard's medians):
//   send, recv         CPU µs per relayed message on the sending / receiving node; cmds Redis
//                      commands, in + out Redis bytes per message: at the CAP ladder's lowest
//                      rate (--pairs pairs, 64 B), the planning point, where a message has about
//                      an event-loop turn to itself (loadgen sends in ~1 ms bursts, so at higher
//                      rates messages share turns; those costs give the optimistic bound).
//   u                  a busy shard's CPU µs per command (CAP-redis-shard: redis-benchmark).
//   b_node, base       node RSS per idle connection (the larger of CAP idle on Redis and W4) and a
//                      fresh node's RSS; b_redis Redis used_memory per connection (CAP idle).
//   k_conn, q_conn     node CPU µs and Redis commands per connect; q_idle Redis commands/s per node.
// Assumptions (flags): m = 1/msg-interval-s + setup-msgs × setups-per-hour / 3600 messages
//   per connection per second; a heartbeat ping every heartbeat-s (costed as one received
//   message: not measured apart); reconnects-per-hour per connection; h = headroom (0.7);
//   a node has one core (Node runs JavaScript on one thread) and node-mem-gib; a shard's
//   budget is h of one core (Redis executes commands on one thread), shard-net-mbit, shard-mem-gib.
// Formulas, for C connections on N nodes (every message crosses Redis: the recipient is
// on another node, the worst case):
//   R = C·m;  per node r = R/N messages sent and as many received, c = C/N connections
//   node CPU(c) = r·(send + recv) + (c/heartbeat)·recv + c·reconnects/3600·k_conn + c·idle
//   N_cpu = ⌈C / c_max⌉ (c_max: most c with node CPU ≤ h);  N_mem = ⌈C·b_node / (h·node_mem − base)⌉
//   N = max(N_cpu, N_mem)
//   Redis commands/s = R·cmds + C·reconnects/3600·q_conn + N·q_idle;  Redis CPU = commands/s · u
//   shards = max(⌈Redis CPU / h⌉, ⌈R·(in + out) / (h·shard_net)⌉, ⌈C·b_redis / (h·shard_mem)⌉)
//   one redis-server while that is 1 (its figures), else a Redis Cluster (CAPC's figures).
// The check: each interior ladder point's node CPU predicted from its two neighbours (per-second
// figures linear in the rate between points), and W2's (W2C's) measured node CPU against the
// ladder's prediction at W2's measured rate.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { connsPerNode, costAt, ladder, medianOf, msgsPerConnPerS, nodeCpu, plan, planningPoint, runCount, type Params, type PerConnection, type Point, type StoredWorkload } from './orchestrator/capacity-model';
import { OUT } from './orchestrator/paths';

interface ResultsFile {
  meta?: Record<string, unknown>;
  machine?: Record<string, unknown>;
  workloads: StoredWorkload[];
}

function parseArgs(argv: string[]): { files: string[]; pairs: number; p: Params; writeDoc: string | undefined } {
  const files: string[] = [];
  const flags = new Map<string, number>();
  let writeDoc: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--write-doc') writeDoc = argv[++i];
    else if (a.startsWith('--')) flags.set(a.slice(2), Number(argv[++i]));
    else files.push(a);
  }
  const f = (name: string, fallback: number) => {
    const v = flags.get(name);
    if (v !== undefined && !Number.isFinite(v)) throw new Error(`--${name} needs a number`);
    return v ?? fallback;
  };
  return {
    files: files.length > 0 ? files : [path.join(OUT, 'results.json')],
    writeDoc,
    pairs: f('pairs', 1000),
    p: {
      msgIntervalS: f('msg-interval-s', 10),
      setupMsgs: f('setup-msgs', 22),
      setupsPerHour: f('setups-per-hour', 6),
      heartbeatS: f('heartbeat-s', 30),
      reconnectsPerHour: f('reconnects-per-hour', 1),
      headroom: f('headroom', 0.7),
      nodeMemGiB: f('node-mem-gib', 1),
      shardNetMbit: f('shard-net-mbit', 1000),
      shardMemGiB: f('shard-mem-gib', 8),
    },
  };
}

const n0 = (v: number) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '—');
const n1 = (v: number) => (Number.isFinite(v) ? (Math.abs(v) >= 100 ? n0(v) : v.toFixed(1)) : '—');
const n2 = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : '—');
const pct = (v: number) => (Number.isFinite(v) ? `${v >= 0 ? '+' : ''}${(v * 100).toFixed(0)} %` : '—');
const bytes = (v: number) => (v >= 2 ** 30 ? `${(v / 2 ** 30).toFixed(1)} GiB` : v >= 2 ** 20 ? `${(v / 2 ** 20).toFixed(0)} MiB` : `${n0(v)} B`);
const count = (v: number) => (v >= 1e6 ? `${(v / 1e6).toFixed(v >= 1e7 ? 0 : 1)}M` : v >= 1e3 ? `${(v / 1e3).toFixed(0)}k` : n0(v));

function load(files: string[]): { workloads: Map<string, StoredWorkload>; sources: string[] } {
  const workloads = new Map<string, StoredWorkload>();
  const sources: string[] = [];
  for (const file of files) {
    if (!existsSync(file)) throw new Error(`${file} is missing: run node dist/bench/run.js --quick --only W2,W2C,CAP,CAPC,W4 first`);
    const r = JSON.parse(readFileSync(file, 'utf8')) as ResultsFile;
    const meta = (key: string) => {
      const v = r.meta?.[key];
      return typeof v === 'string' || typeof v === 'number' ? String(v) : '?';
    };
    sources.push(`${path.relative(process.cwd(), file)} (${meta('mode')} run started ${meta('started')}, load average ${meta('load_start')}→${meta('load_end')})`);
    for (const w of r.workloads) {
      const seen = workloads.get(w.id);
      if (seen === undefined) workloads.set(w.id, { id: w.id, title: w.title, params: w.params, runs: { raw: [...w.runs.raw], switchboard: [...w.runs.switchboard] } });
      else for (const s of ['raw', 'switchboard'] as const) seen.runs[s].push(...w.runs[s]);
    }
    const machine = (key: string) => {
      const v = r.machine?.[key];
      return typeof v === 'string' || typeof v === 'number' ? String(v) : '?';
    };
    const redis = /v=(\S+)/.exec(machine('redis'))?.[1] ?? machine('redis');
    if (r.machine !== undefined && sources.length === 1) sources.push(`machine: ${machine('nproc')} CPUs (${machine('cpu')}), ${machine('memory_gib')} GiB, node ${machine('node')}, Redis ${redis}`);
  }
  return { workloads, sources };
}

function perConnection(w: Map<string, StoredWorkload>): { conn: PerConnection; notes: string[] } {
  const idle = [...w.values()].find((x) => x.id.startsWith('CAP-idle-'));
  const w4 = [...w.values()].find((x) => x.id.startsWith('W4-idle-'));
  const conns = Number(idle?.params.conns ?? NaN);
  const capRss = medianOf(idle, 'rss_per_conn');
  const w4Rss = medianOf(w4, 'rss_per_conn');
  const nodeBytes = Math.max(...[capRss, w4Rss].filter((v) => Number.isFinite(v)));
  // A fresh node's RSS: on Redis (CAP idle) when measured, else without (W4).
  const base = (Number.isFinite(medianOf(idle, 'rss_before_mb')) ? medianOf(idle, 'rss_before_mb') : medianOf(w4, 'rss_before_mb')) * 2 ** 20;
  // A connect's and an idle connection's costs are added terms: missing (an older results file), they count as 0 and show as —.
  const orZero = (v: number) => (Number.isFinite(v) ? v : 0);
  const conn: PerConnection = {
    nodeBytes,
    nodeBaseBytes: Number.isFinite(base) ? base : 100 * 2 ** 20,
    redisBytes: orZero(medianOf(idle, 'redis_mem_per_conn')),
    cpuUsPerConnect: orZero(medianOf(idle, 'cpu_us_per_connect')),
    redisCpuUsPerConnect: orZero(medianOf(idle, 'redis_cpu_us_per_connect')),
    redisCmdsPerConnect: orZero(medianOf(idle, 'redis_cmds_per_connect')),
    redisBytesPerConnect: orZero(medianOf(idle, 'redis_in_bytes_per_connect') + medianOf(idle, 'redis_out_bytes_per_connect')),
    idleCpuPerConn: orZero(medianOf(idle, 'idle_cpu') / conns),
    redisCmdsPerSPerNode: orZero(medianOf(idle, 'redis_cmds_per_s_idle')),
  };
  const notes = [
    `| node RSS per idle connection, one node without Redis (W4, ${n0(Number(w4?.params.conns))} connections) | ${n0(w4Rss)} B | W4 |`,
    `| node RSS per idle connection, node on Redis (${n0(conns)} connections, read ~6 s after they opened, before any full GC: an upper bound) | ${n0(capRss)} B | CAP idle |`,
    `| a fresh node's RSS (base) | ${bytes(conn.nodeBaseBytes)} | CAP idle (else W4) |`,
    `| Redis used_memory per connection (single redis-server) | ${n0(conn.redisBytes)} B | CAP idle |`,
    `| node CPU per connect (JWT, welcome, registration in Redis) | ${n0(conn.cpuUsPerConnect)} µs | CAP idle |`,
    `| Redis CPU / commands / bytes per connect | ${n1(conn.redisCpuUsPerConnect)} µs / ${n1(conn.redisCmdsPerConnect)} / ${n0(conn.redisBytesPerConnect)} B | CAP idle |`,
    `| node CPU while idle, per 10,000 connections | ${n2(conn.idleCpuPerConn * 1e4 * 100)} % of a core | CAP idle |`,
    `| Redis commands/s per node while idle (lease heartbeats) | ${n1(conn.redisCmdsPerSPerNode)} | CAP idle |`,
  ];
  return { conn, notes };
}

function ladderTable(title: string, points: Point[], raw: Point[]): string[] {
  const rawAt = (p: Point) => raw.find((q) => q.id === p.id);
  const lines = [
    `${title}`,
    '',
    '| point | messages/s | sending node µs/msg | receiving node µs/msg | Redis µs/msg | Redis commands/msg (script calls, PUBLISHes) | Redis bytes in / out per msg | baseline send / recv µs/msg | runs |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const p of points) {
    const b = rawAt(p);
    lines.push(
      `| ${p.offered === undefined ? 'closed loop, window 10 (max)' : `open loop at ${n0(p.offered)}/s`} | ${n0(p.rate)} | ${n1(p.send)} | ${n1(p.recv)} | ${n1(p.redis)} | ${n2(p.cmds)} (${n2(p.scripts)}, ${n2(p.publishes)}) | ${n0(p.bytesIn)} / ${n0(p.bytesOut)} | ${b === undefined ? '—' : `${n1(b.send)} / ${n1(b.recv)}`} | ${p.runs} |`,
    );
  }
  return lines;
}

/** Node CPU predicted from a ladder vs measured, for W2-shaped measurements outside the ladder. */
function check(w: Map<string, StoredWorkload>, group: 'W2' | 'W2C', ladders: Map<number, Point[]>): { lines: string[]; errors: number[] } {
  const lines: string[] = [];
  const errors: number[] = [];
  for (const [id, x] of w) {
    if (!id.startsWith(`${group}-`) || x.params.size !== 64) continue;
    const pairs = Number(x.params.pairs);
    const points = ladders.get(pairs);
    const rate = medianOf(x, 'msgs_per_s');
    if (points === undefined || points.length === 0 || !(rate > 0)) continue;
    for (const [node, key, cost] of [['sending', 'server_cpu_1', 'send'], ['receiving', 'server_cpu_0', 'recv']] as const) {
      const measured = medianOf(x, key);
      const predicted = (rate * costAt(points, cost, rate)) / 1e6;
      const error = predicted / measured - 1;
      errors.push(error);
      lines.push(`| ${x.title} | ${n0(rate)} | ${node} | ${n2(predicted)} | ${n2(measured)} | ${pct(error)} |`);
    }
  }
  return { lines, errors };
}

/** Each interior ladder point predicted from its two neighbours alone (send + recv node CPU). */
function holdOut(points: Point[], label: string): { lines: string[]; errors: number[] } {
  const lines: string[] = [];
  const errors: number[] = [];
  for (let i = 1; i < points.length - 1; i++) {
    const p = points[i];
    const neighbours = [points[i - 1], points[i + 1]].filter((q): q is Point => q !== undefined);
    if (p === undefined) continue;
    const predicted = (p.rate * (costAt(neighbours, 'send', p.rate) + costAt(neighbours, 'recv', p.rate))) / 1e6;
    const measured = (p.rate * (p.send + p.recv)) / 1e6;
    const error = predicted / measured - 1;
    errors.push(error);
    lines.push(`| ${label}, ${n0(p.rate)} msg/s from ${neighbours.map((q) => n0(q.rate)).join(' and ')} | ${n2(predicted)} | ${n2(measured)} | ${pct(error)} |`);
  }
  return { lines, errors };
}

/** The message rate per connection below which a node's memory, not its CPU, runs out first. */
function memoryBinds(points: Point[], conn: PerConnection, p: Params, byMem: number): string {
  const silent = nodeCpu(points, conn, { ...p, msgIntervalS: Infinity, setupsPerHour: 0 }, byMem);
  const floor = planningPoint(points);
  if (floor === undefined || !(byMem > 0)) return '—';
  const m = (p.headroom - silent) / (byMem * (floor.send + floor.recv) * 1e-6);
  return m > 0 ? `one message every ${n0(1 / m)} s per connection` : 'any rate (the idle costs alone fill the CPU)';
}

function main(): void {
  const { files, pairs, p, writeDoc } = parseArgs(process.argv.slice(2));
  const { workloads, sources } = load(files);
  const single = ladder(workloads, `CAP-p${pairs}-`);
  const cluster = ladder(workloads, `CAPC-p${pairs}-`);
  if (single.length === 0) throw new Error(`no CAP-p${pairs}-* results: run node dist/bench/run.js --quick --only CAP (and CAPC, W4, W2, W2C)`);
  const { conn, notes } = perConnection(workloads);
  const m = msgsPerConnPerS(p);
  const singleShard = workloads.get('CAP-redis-shard');
  const clusterShard = workloads.get('CAPC-redis-shard');
  // Both columns of a shard run measure Redis alone: pool them.
  const medianBoth = (w: StoredWorkload | undefined, key: string) =>
    w === undefined ? NaN : medianOf({ ...w, runs: { raw: [], switchboard: [...w.runs.raw, ...w.runs.switchboard] } }, key);
  const runsBoth = (w: StoredWorkload | undefined) => runCount(w, 'raw') + runCount(w, 'switchboard');
  // Commands per benchmark message: EVALSHA and the PUBLISH it runs count 2, SPUBLISH 1 (older results did not count them).
  const cmdsOf = (w: StoredWorkload | undefined, fallback: number) => {
    const v = medianBoth(w, 'redis_cmds_per_msg');
    return Number.isFinite(v) && v > 0 ? v : fallback;
  };
  const shardUs = { single: medianBoth(singleShard, 'redis_cpu_us_per_msg'), cluster: medianBoth(clusterShard, 'redis_cpu_us_per_msg') };
  const usPerCmd = { single: shardUs.single / cmdsOf(singleShard, 2), cluster: shardUs.cluster / cmdsOf(clusterShard, 1) };
  const floor = planningPoint(single);
  const out: string[] = [
    `Generated by \`node dist/bench/capacity.js\` from ${sources.join('; ')}.`,
    '',
    '**Measured inputs** (Switchboard, medians; two nodes, senders on one and receivers on the other, 64 B messages).',
    '',
    ...ladderTable(`Per message, one redis-server, ${pairs} pairs (CAP):`, single, ladder(workloads, `CAP-p${pairs}-`, 'raw')),
    '',
    ...(cluster.length > 0 ? [...ladderTable(`Per message, 3-master Redis Cluster, ${pairs} pairs (CAPC; Redis figures summed over the masters):`, cluster, ladder(workloads, `CAPC-p${pairs}-`, 'raw')), ''] : []),
    'Per Redis shard, alone (redis-benchmark, 50 connections, one unbatched message of 200 B per command, one subscriber):',
    '',
    '| shard | messages/s | Redis CPU µs per message | per command | runs |',
    '|---|---:|---:|---:|---:|',
    `| one redis-server (EVALSHA of the bus's script) | ${n0(medianBoth(singleShard, 'msgs_per_s'))} | ${n1(shardUs.single)} | ${n1(usPerCmd.single)} | ${runsBoth(singleShard)} |`,
    `| a Cluster master (SPUBLISH) | ${n0(medianBoth(clusterShard, 'msgs_per_s'))} | ${n1(shardUs.cluster)} | ${n1(usPerCmd.cluster)} | ${runsBoth(clusterShard)} |`,
    '',
    'Per connection:',
    '',
    '| what | figure | from |',
    '|---|---:|---|',
    ...notes,
    '',
    `**Assumptions**: ${n2(m)} messages per connection per second (one every ${p.msgIntervalS} s, plus ${p.setupsPerHour} call set-ups an hour of ${p.setupMsgs} messages each); ` +
      `a heartbeat ping every ${p.heartbeatS} s (costed as one received message); ${p.reconnectsPerHour} reconnect per connection per hour; every message crosses Redis; ` +
      `a node is one core and ${p.nodeMemGiB} GiB; a Redis shard one core, ${p.shardNetMbit} Mbit/s and ${p.shardMemGiB} GiB; ${Math.round(p.headroom * 100)} % of each is planned for use.`,
    '',
    `Planning costs: the ladder's lowest rate (${n0(floor?.rate ?? NaN)} messages/s: ${n1(floor?.send ?? NaN)} µs on the sending node, ${n1(floor?.recv ?? NaN)} µs on the receiving node, ${n2(floor?.cmds ?? NaN)} Redis commands and ${n0((floor?.bytesIn ?? NaN) + (floor?.bytesOut ?? NaN))} Redis bytes per message), where a message has about a turn to itself, as on a node whose many clients each send rarely. "If batched" uses the ladder's cost at the node's own rate instead (messages sharing turns as in the benchmark's bursts): the optimistic bound.`,
    '',
    'Nodes:',
    '',
    '| connections | messages/s | nodes | by CPU (if batched) / by memory | per node: connections, messages/s, CPU (cores) | bound first |',
    '|---:|---:|---:|---:|---|---|',
  ];
  const plans = [1e5, 1e6, 1e7].map((conns) => plan(single, cluster, usPerCmd, conn, p, conns));
  for (const x of plans)
    out.push(`| ${count(x.conns)} | ${count(x.msgsPerS)} | **${x.nodes}** | ${x.nodesCpu} (${x.nodesCpuBatched}) / ${x.nodesMem} | ${count(x.conns / x.nodes)}, ${n0(x.perNodeRate)}, ${n2(x.perNodeCpu)} | node ${x.nodeBinding} |`);
  out.push(
    '',
    'Redis:',
    '',
    '| connections | commands/s | MB/s in + out | memory | CPU, cores (in situ: upper bound) | one redis-server? | Cluster shards | by CPU (in situ) / network / memory | bound first |',
    '|---:|---:|---:|---:|---:|---|---:|---:|---|',
  );
  for (const x of plans) {
    const fitsOne = x.single.shards === 1;
    const need = fitsOne ? x.single : x.cluster;
    out.push(
      `| ${count(x.conns)} | ${count(x.redisCmdsPerS)} | ${n1(x.redisBytesPerS / 1e6)} | ${bytes(x.redisMemBytes)} | ${n2(x.redisCpuCores)} (${n2(x.redisCpuCoresInSitu)}) | ${fitsOne ? 'yes' : `no: ${x.single.shards} shards' worth`} | **${fitsOne ? '—' : x.cluster.shards}** | ${need.cpu} (${need.cpuInSitu}) / ${need.net} / ${need.mem} | Redis ${need.binding} |`,
    );
  }
  const byCpu = connsPerNode(single, conn, p);
  const byMem = Math.floor((p.nodeMemGiB * 2 ** 30 * p.headroom - conn.nodeBaseBytes) / conn.nodeBytes);
  out.push(
    '',
    `One node holds ~${n0(byCpu)} connections at this rate by CPU (${Math.round(p.headroom * 100)} % of its core; ${n0(connsPerNode(single, conn, p, true))} if batched) and ${n0(byMem)} by memory (${n0(conn.nodeBytes)} B each, ${p.nodeMemGiB} GiB); ` +
      `memory binds first only below ${memoryBinds(single, conn, p, byMem)}.`,
    '',
    '**The check.** Node CPU predicted from the ladder at the rate W2 (W2C) measured, against the node CPU measured in that run (cores):',
    '',
    '| measurement | messages/s | node | predicted | measured | error |',
    '|---|---:|---|---:|---:|---:|',
  );
  const ladders = (group: 'CAP' | 'CAPC') => new Map([100, 1000].map((n) => [n, ladder(workloads, `${group}-p${n}-`)] as const));
  const w2 = check(workloads, 'W2', ladders('CAP'));
  const w2c = check(workloads, 'W2C', ladders('CAPC'));
  out.push(...w2.lines, ...w2c.lines);
  const all = [...w2.errors, ...w2c.errors].filter((e) => Number.isFinite(e));
  const mean = (e: number[]) => e.reduce((s, v) => s + Math.abs(v), 0) / e.length;
  if (all.length > 0) out.push('', `Mean absolute error ${(mean(all) * 100).toFixed(0)} % over ${all.length} predictions.`);
  else out.push('| (no W2/W2C results in the input) | | | | | |');
  out.push('', 'Each interior ladder point predicted from its two neighbours (both nodes\' CPU, cores):', '', '| point | predicted | measured | error |', '|---|---:|---:|---:|');
  const held = [100, 1000].flatMap((n) => {
    const h = holdOut(ladder(workloads, `CAP-p${n}-`), `CAP ${n} pairs`);
    out.push(...h.lines);
    return h.errors;
  });
  if (held.length > 0) out.push('', `Mean absolute error ${(mean(held) * 100).toFixed(0)} % over ${held.length} points.`);
  const md = `${out.join('\n')}\n`;
  if (writeDoc === undefined) {
    process.stdout.write(md);
    return;
  }
  // --write-doc FILE: replaces what stands between the two markers in FILE (docs/operations.md).
  const doc = readFileSync(writeDoc, 'utf8');
  const begin = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  if (begin === -1 || end < begin) throw new Error(`${writeDoc} has no ${BEGIN} … ${END} markers`);
  writeFileSync(writeDoc, `${doc.slice(0, begin + BEGIN.length)}\n${md}${doc.slice(end)}`);
  process.stderr.write(`capacity: wrote the model into ${writeDoc}\n`);
}

const BEGIN = '<!-- capacity.js: begin -->';
const END = '<!-- capacity.js: end -->';

try {
  main();
} catch (error) {
  process.stderr.write(`capacity: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
