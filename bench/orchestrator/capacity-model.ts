// The capacity model's arithmetic (bench/capacity.ts prints it; the formulas are
// in that file's header and in docs/operations.md "Capacity"). Pure: results in,
// figures out.
//
// A ladder is one topology's measured points (CAP-p<pairs>-r<rate>, -max), each
// a rate and what one relayed message cost there. The plan uses the lowest
// rate's costs (the planning point: about one message per event-loop turn, as
// on a node whose clients each send rarely); the ladder at the node's own rate
// gives the optimistic bound (messages sharing turns, script calls and writes
// as they did in the benchmark). Between two points a per-second figure (CPU
// cores, commands/s, bytes/s) is linear in the rate; outside the ladder the
// nearest point's per-message cost holds.
import type { Measurement } from './loadgen';

export type Runs = Record<'raw' | 'switchboard', (Measurement | { failed: string })[]>;
export interface StoredWorkload {
  id: string;
  title: string;
  params: Record<string, number | string>;
  runs: Runs;
}

/** Median of a key over a system's successful runs. */
export function medianOf(w: StoredWorkload | undefined, key: string, system: 'raw' | 'switchboard' = 'switchboard'): number {
  const v = (w?.runs[system] ?? [])
    .flatMap((m) => ('failed' in m || typeof m[key] !== 'number' || !Number.isFinite(m[key]) ? [] : [m[key]]))
    .sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? (v[mid] ?? NaN) : ((v[mid - 1] ?? NaN) + (v[mid] ?? NaN)) / 2;
}

export function runCount(w: StoredWorkload | undefined, system: 'raw' | 'switchboard' = 'switchboard'): number {
  return (w?.runs[system] ?? []).filter((m) => !('failed' in m)).length;
}

/** What one relayed message cost at one measured rate (µs of a core, commands, bytes). */
export interface Point {
  id: string;
  /** Offered rate (open loop), or undefined for the closed-loop maximum. */
  offered: number | undefined;
  rate: number;
  send: number;
  recv: number;
  redis: number;
  cmds: number;
  scripts: number;
  publishes: number;
  bytesIn: number;
  bytesOut: number;
  runs: number;
}

export type Cost = 'send' | 'recv' | 'redis' | 'cmds' | 'bytesIn' | 'bytesOut';

export function ladder(workloads: Map<string, StoredWorkload>, prefix: string, system: 'raw' | 'switchboard' = 'switchboard'): Point[] {
  const points: Point[] = [];
  for (const [id, w] of workloads) {
    if (!id.startsWith(prefix)) continue;
    const at = (key: string) => medianOf(w, key, system);
    const rate = at('msgs_per_s');
    if (!(rate > 0)) continue;
    const offered = w.params.rate;
    points.push({
      id,
      offered: typeof offered === 'number' ? offered : undefined,
      rate,
      send: at('cpu_us_per_msg_send_node'),
      recv: at('cpu_us_per_msg_recv_node'),
      redis: at('redis_cpu_us_per_msg'),
      cmds: at('redis_cmds_per_msg'),
      scripts: at('redis_scripts_per_msg'),
      publishes: at('redis_publishes_per_msg'),
      bytesIn: at('redis_in_bytes_per_msg'),
      bytesOut: at('redis_out_bytes_per_msg'),
      runs: runCount(w, system),
    });
  }
  return points.sort((a, b) => a.rate - b.rate);
}

/** The per-message cost at `rate`: per-second figures linear between points, the nearest point's cost outside. */
export function costAt(points: Point[], cost: Cost, rate: number): number {
  const usable = points.filter((p) => Number.isFinite(p[cost]));
  const first = usable[0];
  const last = usable[usable.length - 1];
  if (first === undefined || last === undefined) return NaN;
  if (rate <= first.rate) return first[cost];
  if (rate >= last.rate) return last[cost];
  for (let i = 1; i < usable.length; i++) {
    const a = usable[i - 1];
    const b = usable[i];
    if (a === undefined || b === undefined || rate > b.rate) continue;
    const perSecond = a[cost] * a.rate + ((b[cost] * b.rate - a[cost] * a.rate) * (rate - a.rate)) / (b.rate - a.rate);
    return perSecond / rate;
  }
  return last[cost];
}

export interface Params {
  /** One message per connection every this many seconds on average, besides call set-ups. */
  msgIntervalS: number;
  setupMsgs: number;
  setupsPerHour: number;
  /** Client heartbeat (`ping` → `pong`) interval; a ping is costed as a received message. */
  heartbeatS: number;
  reconnectsPerHour: number;
  /** Fraction of a resource planned for use: CPU of a node's one thread, its memory, a shard's CPU, NIC and memory. */
  headroom: number;
  nodeMemGiB: number;
  shardNetMbit: number;
  shardMemGiB: number;
}

/** Per-connection figures: node RSS and Redis memory per idle connection, what a connect costs. */
export interface PerConnection {
  nodeBytes: number;
  nodeBaseBytes: number;
  redisBytes: number;
  cpuUsPerConnect: number;
  redisCpuUsPerConnect: number;
  redisCmdsPerConnect: number;
  redisBytesPerConnect: number;
  /** Node CPU (cores) per idle connection. */
  idleCpuPerConn: number;
  /** Redis commands/s per node while idle (lease heartbeats). */
  redisCmdsPerSPerNode: number;
}

export interface Plan {
  conns: number;
  msgsPerS: number;
  /** Nodes by CPU at the planning cost (the ladder's lowest rate: about one message per turn). */
  nodesCpu: number;
  /** Nodes by CPU if messages shared turns as in the ladder at the per-node rate (the optimistic bound). */
  nodesCpuBatched: number;
  nodesMem: number;
  nodes: number;
  nodeBinding: 'CPU' | 'memory';
  perNodeRate: number;
  perNodeCpu: number;
  redisCmdsPerS: number;
  redisBytesPerS: number;
  redisMemBytes: number;
  /** Redis CPU (cores): commands/s × a busy shard's CPU per command; and the ladder's in-situ cost (upper bound). */
  redisCpuCores: number;
  redisCpuCoresInSitu: number;
  single: ShardNeed;
  cluster: ShardNeed;
}

export interface ShardNeed {
  cpu: number;
  cpuInSitu: number;
  net: number;
  mem: number;
  shards: number;
  binding: 'CPU' | 'network' | 'memory';
}

const GiB = 2 ** 30;

export function msgsPerConnPerS(p: Params): number {
  return 1 / p.msgIntervalS + (p.setupMsgs * p.setupsPerHour) / 3600;
}

/** The planning point: the ladder's lowest rate, where a message has (nearly) a turn, a script call and writes to itself. */
export function planningPoint(points: Point[]): Point | undefined {
  return points[0];
}

/**
 * Node CPU (cores) of one node holding `c` connections, at the planning point's per-message costs
 * (`batched`: at the ladder's costs for the node's rate, its per-second CPU made non-decreasing in
 * the rate, so that fewer messages never cost more).
 */
export function nodeCpu(points: Point[], conn: PerConnection, p: Params, c: number, batched = false): number {
  const r = c * msgsPerConnPerS(p);
  const floor = planningPoint(points);
  if (floor === undefined) return NaN;
  const perSecond = (cost: 'send' | 'recv') => {
    if (!batched) return r * floor[cost];
    const below = points.filter((q) => q.rate <= r).map((q) => q.rate * q[cost]);
    return Math.max(r * costAt(points, cost, r), ...below);
  };
  const recvPerMsg = batched ? costAt(points, 'recv', r) : floor.recv;
  const us = perSecond('send') + perSecond('recv') + (c / p.heartbeatS) * recvPerMsg + ((c * p.reconnectsPerHour) / 3600) * conn.cpuUsPerConnect;
  return us / 1e6 + c * conn.idleCpuPerConn;
}

/** The most connections one node holds within the headroom (to 1,000). */
export function connsPerNode(points: Point[], conn: PerConnection, p: Params, batched = false): number {
  let c = 0;
  while (nodeCpu(points, conn, p, c + 1000, batched) <= p.headroom && c < 1e7) c += 1000;
  return c;
}

/**
 * Redis: commands/s at the planning point's commands per message, plus connects and the nodes'
 * lease heartbeats; CPU = commands/s × `usPerCmd`, a busy shard's CPU per command (redis-benchmark,
 * CAP-redis-shard), or where that is missing the ladder's in-situ Redis CPU per message, which is
 * also shown as the upper bound (a quiet Redis also pays a wake-up per command).
 */
function shards(points: Point[], usPerCmd: number, conn: PerConnection, p: Params, plan: { conns: number; msgsPerS: number; nodes: number }): ShardNeed & { cores: number; coresInSitu: number; cmds: number; bytes: number; memBytes: number } {
  const floor = planningPoint(points);
  const connects = (plan.conns * p.reconnectsPerHour) / 3600;
  const cmds = plan.msgsPerS * (floor?.cmds ?? NaN) + connects * conn.redisCmdsPerConnect + plan.nodes * conn.redisCmdsPerSPerNode;
  const coresInSitu = (plan.msgsPerS * (floor?.redis ?? NaN) + connects * conn.redisCpuUsPerConnect) / 1e6;
  const cores = Number.isFinite(usPerCmd) ? (cmds * usPerCmd) / 1e6 : coresInSitu;
  const bytes = plan.msgsPerS * ((floor?.bytesIn ?? NaN) + (floor?.bytesOut ?? NaN)) + connects * conn.redisBytesPerConnect;
  const memBytes = plan.conns * conn.redisBytes;
  const need = {
    cpu: Math.ceil(cores / p.headroom),
    cpuInSitu: Math.ceil(coresInSitu / p.headroom),
    net: Math.ceil(bytes / ((p.shardNetMbit * 1e6) / 8) / p.headroom),
    mem: Math.ceil(memBytes / (p.shardMemGiB * GiB * p.headroom)),
  };
  const shardsNeeded = Math.max(1, need.cpu, need.net, need.mem);
  const binding = need.cpu >= need.net && need.cpu >= need.mem ? 'CPU' : need.net >= need.mem ? 'network' : 'memory';
  return { ...need, shards: shardsNeeded, binding, cores, coresInSitu, cmds, bytes, memBytes };
}

/** Nodes and Redis shards for `conns` connections. `single`: one redis-server's ladder; `cluster`: the Cluster's. */
export function plan(single: Point[], cluster: Point[], usPerCmd: { single: number; cluster: number }, conn: PerConnection, p: Params, conns: number): Plan {
  const msgsPerS = conns * msgsPerConnPerS(p);
  const nodesCpu = Math.ceil(conns / Math.max(1000, connsPerNode(single, conn, p)));
  const nodesCpuBatched = Math.ceil(conns / Math.max(1000, connsPerNode(single, conn, p, true)));
  const connsPerNodeByMem = Math.floor((p.nodeMemGiB * GiB * p.headroom - conn.nodeBaseBytes) / conn.nodeBytes);
  const nodesMem = Math.ceil(conns / connsPerNodeByMem);
  const nodes = Math.max(nodesCpu, nodesMem);
  const base = { conns, msgsPerS, nodes };
  const s = shards(single, usPerCmd.single, conn, p, base);
  const c = shards(cluster.length > 0 ? cluster : single, Number.isFinite(usPerCmd.cluster) ? usPerCmd.cluster : usPerCmd.single, conn, p, base);
  return {
    ...base,
    nodesCpu,
    nodesCpuBatched,
    nodesMem,
    nodeBinding: nodesCpu >= nodesMem ? 'CPU' : 'memory',
    perNodeRate: msgsPerS / nodes,
    perNodeCpu: nodeCpu(single, conn, p, conns / nodes),
    redisCmdsPerS: s.cmds,
    redisBytesPerS: s.bytes,
    redisMemBytes: s.memBytes,
    redisCpuCores: s.cores,
    redisCpuCoresInSitu: s.coresInSitu,
    single: s,
    cluster: c,
  };
}
