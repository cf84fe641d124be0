// The capacity model's measurements (issue 16; the model is bench/capacity.ts
// and docs/operations.md "Capacity"): what one relayed message costs each node
// and Redis at several offered rates, what one connection costs a node and
// Redis, and what one Redis shard spends per message when busy.
//
//   CAP   idle connections on a node and a redis-server of their own (bytes per
//         connection in the node and in Redis; CPU and Redis commands per connect);
//         W2's shape (senders on one node, receivers on the other, 64 B, the
//         shared redis-server): 100 and 1000 pairs, open loop at a ladder of
//         offered rates and closed loop at window 10 (each system's maximum);
//         the redis-server alone under redis-benchmark.
//   CAPC  the ladder on the 3-master Redis Cluster (sharded pub/sub), 1000 pairs,
//         and one master alone.
//
// The per-message cost is not a constant: at a low rate fewer messages share
// an event-loop turn, so fewer share a Redis script call, a PUBLISH and a
// socket write. Hence the ladder. Each run is measured over at least
// CAP_MIN_DURATION_S: /proc counts CPU in 10 ms ticks, and at 2,500 msg/s a
// node spends only ~0.2–0.3 s of CPU per second.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { holdIdleConnections, protocolArgs, runLoadgen, type Measurement } from './loadgen';
import type { Group, MetricSpec, RoundContext, Workload } from './model';
import type { Options } from './options';
import { ROOT } from './paths';
import { Child, cpuSeconds, rssBytes, sleep } from './processes';
import { RedisCounters } from './redis-counters';
import { ensureRedisCluster } from './redis-cluster';
import { ensureRedis, redisEndpoints, redisPids, startPrivateRedis, startRaw, startSwitchboard, type Server, type SystemName } from './systems';

const run = promisify(execFile);

/** Offered rates of the open-loop ladder, messages/s over all pairs. */
export const CAP_RATES = [2500, 5000, 10_000, 20_000, 40_000];
const CAP_MIN_DURATION_S = 3;
/** Idle connections on the Redis topology: enough that per-connection bytes stand out of Redis's noise. */
const CAP_IDLE_CONNS = 10_000;
/** Idle hold: longer than a lease heartbeat (PRESENCE_TTL_MS / 4 = 3.75 s), so its Redis work is in the window. */
const CAP_IDLE_HOLD_S = 5;

const PER_MESSAGE: MetricSpec[] = [
  { key: 'msgs_per_s', label: 'messages/s', unit: 'msg/s' },
  { key: 'cpu_us_per_msg_send_node', label: "sending node's CPU per message", unit: 'µs' },
  { key: 'cpu_us_per_msg_recv_node', label: "receiving node's CPU per message", unit: 'µs' },
  { key: 'redis_cpu_us_per_msg', label: "Redis's CPU per message", unit: 'µs' },
  { key: 'redis_cmds_per_msg', label: 'Redis commands per message', unit: 'count' },
  { key: 'redis_in_bytes_per_msg', label: 'Redis bytes in per message', unit: 'B' },
  { key: 'redis_out_bytes_per_msg', label: 'Redis bytes out per message', unit: 'B' },
  { key: 'p99_us', label: 'p99 latency', unit: 'µs' },
];

/** `rate` undefined: closed loop at window 10, the system's maximum on this machine. */
function ladderWorkload(group: 'CAP' | 'CAPC', pairs: number, rate: number | undefined): Workload {
  const point = rate === undefined ? 'max' : `r${rate}`;
  return {
    id: `${group}-p${pairs}-${point}`,
    title: `${group} ${pairs} pairs, 64 B, ${rate === undefined ? 'closed loop, window 10 (max)' : `open loop at ${rate.toLocaleString('en-US')} msg/s`}`,
    params: { pairs, size: 64, ...(rate === undefined ? { window: 10 } : { rate }) },
    metrics: PER_MESSAGE,
    measure: (d, ctx) => {
      const [recvNode, sendNode] = d.nodes;
      if (recvNode === undefined || sendNode === undefined) throw new Error('needs two nodes');
      const o = ctx.options;
      return runLoadgen(
        [
          ...['--mode', 'relay', '--port', String(recvNode.port), '--port2', String(sendNode.port), '--count', String(pairs), '--size', '64'],
          ...(rate === undefined ? ['--window', '10'] : ['--rate', String(rate)]),
          ...['--warmup', String(o.warmupS), '--duration', String(Math.max(o.durationS, CAP_MIN_DURATION_S)), '--settle-ms', String(o.settleMs)],
          ...protocolArgs(d.system, 'relay', ctx.tokens),
        ],
        d.nodes,
        120,
      );
    },
  };
}

/**
 * Idle authenticated connections on a node of its own with a redis-server of its own (the shared
 * one may hold earlier runs' sessions, which expire meanwhile and would hide what these add): the
 * node's RSS and Redis's used_memory per connection, and what setting each up cost (node CPU, Redis
 * CPU, commands and bytes), then the node's CPU and Redis's commands per second while they idle.
 */
function idleOnRedisWorkload(conns: number): Workload {
  return {
    id: `CAP-idle-${conns}`,
    title: `CAP ${conns} idle connections on a node with Redis`,
    params: { conns },
    metrics: [
      { key: 'rss_per_conn', label: "node's RSS per connection", unit: 'B' },
      { key: 'redis_mem_per_conn', label: "Redis's used_memory per connection", unit: 'B' },
      { key: 'cpu_us_per_connect', label: "node's CPU per connect (setup)", unit: 'µs' },
      { key: 'redis_cmds_per_connect', label: 'Redis commands per connect', unit: 'count' },
      { key: 'redis_cmds_per_s_idle', label: 'Redis commands/s while idle (one node)', unit: 'count' },
    ],
    measure: async (d, ctx) => {
      const redis = await startPrivateRedis();
      const node = await (d.system === 'raw' ? startRaw('raw-idle', redis.url) : startSwitchboard('switchboard-idle', redis.url));
      try {
        return await measureIdle(node, redis.url, redis.child.pid, d.system, conns, ctx);
      } finally {
        await node.child.stop();
        await redis.child.stop();
      }
    },
  };
}

async function measureIdle(node: Server, redisUrl: string, redisPid: number, system: SystemName, conns: number, ctx: RoundContext): Promise<Measurement> {
  const pid = node.child.pid;
  await sleep(1000);
  const counters = new RedisCounters([redisUrl.replace(/^redis:\/\//, '')]);
  const redisCpu0 = cpuSeconds(redisPid);
  const rss0 = rssBytes(pid);
  const cpu0 = cpuSeconds(pid);
  counters.mark();
  const idle = await holdIdleConnections(node, system, ctx.tokens, conns, { sources: ctx.options.idleSources });
  try {
    const ready = idle.ready;
    // Registration in Redis may finish a moment after the welcome frames.
    await sleep(500);
    const cpu1 = cpuSeconds(pid);
    const redisCpu1 = cpuSeconds(redisPid);
    const t1 = performance.now();
    counters.mark();
    await sleep(CAP_IDLE_HOLD_S * 1000);
    const cpu2 = cpuSeconds(pid);
    const idleS = (performance.now() - t1) / 1000;
    counters.mark();
    const rss2 = rssBytes(pid);
    const [setup, idleWindow] = await counters.closeWindows();
    const m: Measurement = {
      rss_per_conn: (rss2 - rss0) / conns,
      rss_before_mb: rss0 / 2 ** 20,
      rss_after_mb: rss2 / 2 ** 20,
      cpu_us_per_connect: ((cpu1 - cpu0) / conns) * 1e6,
      redis_cpu_us_per_connect: ((redisCpu1 - redisCpu0) / conns) * 1e6,
      idle_cpu: (cpu2 - cpu1) / idleS,
      setup_s: Number(ready.setup_s),
      connects_per_s_setup: conns / Number(ready.setup_s),
    };
    if (setup !== undefined && idleWindow !== undefined) {
      m.redis_mem_per_conn = (setup.usedMemoryDelta + idleWindow.usedMemoryDelta) / conns;
      m.redis_cmds_per_connect = setup.commands / conns;
      m.redis_in_bytes_per_connect = setup.netIn / conns;
      m.redis_out_bytes_per_connect = setup.netOut / conns;
      m.redis_cmds_per_s_idle = idleWindow.commands / idleWindow.seconds;
      m.redis_calls_per_s_idle = [...idleWindow.calls].filter(([, n]) => n > 0).map(([name, n]) => `${name} ${(n / idleWindow.seconds).toFixed(1)}`).join(', ');
      m.redis_calls_per_connect = [...setup.calls].filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]).map(([name, n]) => `${name} ${(n / conns).toFixed(2)}`).join(', ');
    }
    return m;
  } finally {
    await idle.close();
  }
}

/** A message's envelope on the bus is about this long for a 64 B payload (redis_in_bytes_per_msg ≈ 210–260 with framing). */
const SHARD_PAYLOAD = 'x'.repeat(200);
const SHARD_CHANNEL = 'capbench';

/**
 * One Redis shard's budget, measured alone: redis-benchmark (50 connections) sends unbatched
 * messages as fast as it can to the Redis the group runs on, each one destination's batch of one
 * message, as a node sends at low rates: EVALSHA of the bus's script (src/bus/lua/publish-batches.lua)
 * on one redis-server, SPUBLISH on the Cluster (to the master owning the channel), with one
 * subscriber reading every delivery. Redis's CPU µs per message here is what a busy shard spends;
 * in the ladder a quiet Redis also pays a wake-up per command. No Switchboard or baseline process
 * is involved: both columns measure the same thing.
 */
function shardWorkload(group: 'CAP' | 'CAPC'): Workload {
  return {
    id: `${group}-redis-shard`,
    title: `${group} one Redis shard alone, unbatched messages (redis-benchmark; no server involved)`,
    params: { size: SHARD_PAYLOAD.length },
    metrics: [
      { key: 'msgs_per_s', label: 'messages/s', unit: 'msg/s' },
      { key: 'redis_cpu_us_per_msg', label: "Redis's CPU per message", unit: 'µs' },
    ],
    measure: async (_d, ctx) => {
      const endpoints = redisEndpoints();
      const pids = redisPids();
      let target: string | undefined;
      if (group === 'CAP') target = (await ensureRedis()).replace(/^redis:\/\//, '');
      else
        for (const endpoint of (await ensureRedisCluster()).split(',')) {
          const [host = '', port = ''] = endpoint.split(':');
          const reply = await run('redis-cli', ['-h', host, '-p', port, 'spublish', SHARD_CHANNEL, 'probe'], { timeout: 5000 });
          if (/^\d+\s*$/.test(reply.stdout)) target = endpoint;
        }
      const pid = pids[endpoints.indexOf(target ?? '')];
      if (target === undefined || pid === undefined) throw new Error('no Redis owns the channel');
      const [host = '', port = ''] = target.split(':');
      const cli = ['-h', host, '-p', port];
      let command: string[];
      if (group === 'CAP') {
        const script = readFileSync(path.join(ROOT, 'src', 'bus', 'lua', 'publish-batches.lua'), 'utf8');
        const sha = (await run('redis-cli', [...cli, 'script', 'load', script], { timeout: 5000 })).stdout.trim();
        command = ['evalsha', sha, '0', SHARD_CHANNEL, SHARD_PAYLOAD];
      } else command = ['spublish', SHARD_CHANNEL, SHARD_PAYLOAD];
      const subscriber = new Child('redis-subscriber', 'redis-cli', [...cli, group === 'CAP' ? 'subscribe' : 'ssubscribe', SHARD_CHANNEL], { PATH: process.env.PATH });
      try {
        await sleep(300);
        const requests = ctx.options.quick ? 100_000 : 300_000;
        const counters = new RedisCounters([target]);
        const cpu0 = cpuSeconds(pid);
        const t0 = performance.now();
        counters.mark();
        await run('redis-benchmark', [...cli, '-c', '50', '-n', String(requests), '-q', ...command], { timeout: 120_000 });
        counters.mark();
        const wall = (performance.now() - t0) / 1000;
        const cpu = cpuSeconds(pid) - cpu0;
        const window = await counters.close();
        const m: Measurement = { msgs_per_s: requests / wall, redis_cpu: cpu / wall, redis_cpu_us_per_msg: (cpu / requests) * 1e6 };
        // Commands Redis counts per message: EVALSHA and the PUBLISH it runs are 2, SPUBLISH 1.
        if (window !== undefined) m.redis_cmds_per_msg = window.commands / requests;
        return m;
      } finally {
        await subscriber.stop();
      }
    },
  };
}

/** CAP (one redis-server) and CAPC (3-master Redis Cluster): one line in workloads.ts groups(). */
export function capacityGroups(o: Options): Group[] {
  const ladder = (group: 'CAP' | 'CAPC', pairs: number, rates: number[]) => [...rates.map((r) => ladderWorkload(group, pairs, r)), ladderWorkload(group, pairs, undefined)];
  return [
    {
      name: 'CAP',
      title: 'capacity model: per-message costs at a ladder of rates, two nodes on one redis-server; per-connection costs with Redis',
      topology: 'two-node',
      freshPerMeasurement: false,
      workloads: [idleOnRedisWorkload(Math.min(CAP_IDLE_CONNS, o.idleConns)), ...ladder('CAP', 100, CAP_RATES), ...ladder('CAP', 1000, CAP_RATES), shardWorkload('CAP')],
    },
    {
      name: 'CAPC',
      title: 'capacity model: per-message costs on a 3-master Redis Cluster (sharded pub/sub)',
      topology: 'two-node-cluster',
      freshPerMeasurement: false,
      workloads: [...ladder('CAPC', 1000, [2500, 5000, 20_000]), shardWorkload('CAPC')],
    },
  ];
}
