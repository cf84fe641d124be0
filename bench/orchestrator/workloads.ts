// The workloads: the groups W1–W8 (what a workload and a group are: model.ts; see
// "Workloads and targets" in bench/README.md).
//
// Workloads are a list of groups; a group says which servers it needs (one
// node, two nodes on Redis, a fresh node per measurement), or runs its own
// rounds over systems of its own (W6: the tunnel against nginx,
// tunnel-workloads.ts).
import { holdIdleConnections, protocolArgs, runLoadgen } from './loadgen';
import type { Options } from './options';
import type { Group, MetricSpec, OwnRoundsGroup, Workload } from './model';
import { callSetupGroup } from './setup-workload';
import { stormGroup } from './storm-workload';
import { tunnelGroup } from './tunnel-workloads';
import { capacityGroups } from './capacity-workloads';
import { rssBytes, sleep } from './processes';

const LATENCY: MetricSpec[] = [
  { key: 'p50_us', label: 'p50 latency', unit: 'µs' },
  { key: 'p99_us', label: 'p99 latency', unit: 'µs' },
];

/** Settling after setup matters only when receivers register asynchronously (Redis subscriptions, room joins). */
function timing(o: Options, settle: boolean): string[] {
  return ['--warmup', String(o.warmupS), '--duration', String(o.durationS), '--settle-ms', String(settle ? o.settleMs : 0)];
}

/** W2C: W2 on a 3-master Redis Cluster (sharded pub/sub), beside W2 on one redis-server; no target of its own. */
type RelayGroup = 'W1' | 'W2' | 'W2C';

function relayWorkload(group: RelayGroup, pairs: number, window: number, size: number): Workload {
  // Issue 16's targets, against the corked baseline: W2 ≥ 0.8×; W1 at window 1 ≥ 0.85× (64 B) and
  // ≥ 0.8× (1 KiB), at window 10 ≥ 0.7×.
  const minRatio = group === 'W2C' ? undefined : group === 'W2' ? 0.8 : window === 10 ? 0.7 : size >= 1024 ? 0.8 : 0.85;
  const sizeLabel = size >= 1024 ? `${size / 1024} KiB` : `${size} B`;
  return {
    id: `${group}-p${pairs}-w${window}-s${size}`,
    title: `${group} ${pairs} pairs, window ${window}, ${sizeLabel}`,
    params: { pairs, window, size },
    metrics: [{ key: 'msgs_per_s', label: 'messages/s', unit: 'msg/s', ...(minRatio === undefined ? {} : { target: { kind: 'ratio', min: minRatio } }) }, ...LATENCY],
    measure: (d, ctx) => {
      const [recvNode, sendNode] = d.nodes;
      if (recvNode === undefined) throw new Error('no server');
      const o = ctx.options;
      return runLoadgen(
        [
          ...['--mode', 'relay', '--port', String(recvNode.port), '--port2', String((sendNode ?? recvNode).port)],
          ...['--count', String(pairs), '--window', String(window), '--size', String(size)],
          ...timing(o, group !== 'W1'),
          ...protocolArgs(d.system, 'relay', ctx.tokens),
        ],
        d.nodes,
        120,
      );
    },
  };
}

/**
 * Tail latency at a load both systems carry: open-loop senders at the same offered rate for both,
 * half of the LOWER of the two systems' maxima this round (100 pairs, 64 B, each system's better
 * of windows 1 and 10). Targets (issue 16): p99 ≤ the baseline's + 1 ms, p99.9 ≤ 2× the baseline's.
 */
function fixedRateWorkload(group: 'W1' | 'W2'): Workload {
  const basis = [`${group}-p100-w10-s64`, `${group}-p100-w1-s64`];
  return {
    id: `${group}-rate-half-max`,
    title: `${group} 100 pairs, 64 B, open loop at ½ the lower max rate`,
    params: { pairs: 100, size: 64 },
    metrics: [
      { key: 'msgs_per_s', label: 'offered rate (msgs/s)', unit: 'msg/s' },
      { key: 'p50_us', label: 'p50 latency', unit: 'µs' },
      { key: 'p99_us', label: 'p99 latency', unit: 'µs', target: { kind: 'overBaseline', value: 1000 } },
      { key: 'p999_us', label: 'p99.9 latency', unit: 'µs', target: { kind: 'ratioAtMost', max: 2 } },
    ],
    measure: (d, ctx) => {
      const maxOf = (system: 'raw' | 'switchboard') => Math.max(0, ...basis.map((id) => Number(ctx.results.get(id)?.[system]?.msgs_per_s ?? 0)));
      const max = Math.min(maxOf('raw'), maxOf('switchboard'));
      if (!(max > 0)) throw new Error(`needs ${group} 100-pair 64 B results for both systems from this round`);
      const [recvNode, sendNode] = d.nodes;
      if (recvNode === undefined) throw new Error('no server');
      return runLoadgen(
        [
          ...['--mode', 'relay', '--port', String(recvNode.port), '--port2', String((sendNode ?? recvNode).port)],
          ...['--count', '100', '--size', '64', '--rate', String(Math.round(max / 2))],
          ...timing(ctx.options, group === 'W2'),
          ...protocolArgs(d.system, 'relay', ctx.tokens),
        ],
        d.nodes,
        120,
      );
    },
  };
}

function fanoutWorkload(window: number): Workload {
  const members = 1000;
  return {
    id: `W3-m${members}-w${window}`,
    title: `W3 room fan-out, 1 → ${members} members, window ${window}, 64 B`,
    params: { members, window, size: 64 },
    metrics: [
      { key: 'msgs_per_s', label: 'deliveries/s', unit: 'msg/s', target: { kind: 'ratio', min: window === 1 ? 0.7 : 0.5 } },
      ...LATENCY,
    ],
    measure: (d, ctx) => {
      const node = d.nodes[0];
      if (node === undefined) throw new Error('no server');
      return runLoadgen(
        [
          ...['--mode', 'fanout', '--port', String(node.port), '--count', String(members), '--window', String(window), '--size', '64'],
          ...timing(ctx.options, true),
          ...protocolArgs(d.system, 'fanout', ctx.tokens),
        ],
        d.nodes,
        120,
      );
    },
  };
}

/** W4 as users start Switchboard (systems.ts, Launch): the installed binary, and the image / k8s manifests. */
function idleWorkload(conns: number, launch: 'binary' | 'image'): Workload {
  const how = launch === 'binary' ? '`switchboard serve`' : 'as the image and k8s start it';
  return {
    id: `W4-idle-${conns}-${launch}`,
    title: `W4 idle authenticated connections, ${conns}, ${how}`,
    params: { conns, launch },
    launch,
    // Issue 16: ≤ 1.4× the raw relay's bytes per idle connection (the first round's target was ≤ 2 KB).
    metrics: [{ key: 'rss_per_conn', label: 'RSS per connection', unit: 'B', target: { kind: 'ratioAtMost', max: 1.4 } }],
    measure: async (d, ctx) => {
      const node = d.nodes[0];
      if (node === undefined) throw new Error('no server');
      const o = ctx.options;
      await sleep(1000);
      const before = rssBytes(node.child.pid);
      const idle = await holdIdleConnections(node, d.system, ctx.tokens, conns, { sources: o.idleSources });
      try {
        await sleep(o.idleSettleS * 1000);
        const after = rssBytes(node.child.pid);
        return {
          rss_per_conn: (after - before) / conns,
          rss_before_mb: before / 2 ** 20,
          rss_after_mb: after / 2 ** 20,
          setup_s: Number(idle.ready.setup_s),
          connects_per_s_setup: conns / Number(idle.ready.setup_s),
        };
      } finally {
        await idle.close();
      }
    },
  };
}

function connectWorkload(): Workload {
  return {
    id: 'W5-connect',
    title: 'W5 connect + JWT + welcome + close',
    params: {},
    metrics: [{ key: 'connects_per_s', label: 'connects/s', unit: 'conn/s', target: { kind: 'ratio', min: 0.7 } }],
    measure: (d, ctx) => {
      const node = d.nodes[0];
      if (node === undefined) throw new Error('no server');
      const o = ctx.options;
      return runLoadgen(
        [
          ...['--mode', 'connect', '--port', String(node.port), '--concurrency', String(o.connectConcurrency), '--sources', '32'],
          ...['--warmup', String(o.warmupS), '--duration', String(o.durationS)],
          ...protocolArgs(d.system, 'connect', ctx.tokens),
        ],
        d.nodes,
        60,
      );
    },
  };
}

export function groups(o: Options): (Group | OwnRoundsGroup)[] {
  const matrix = (group: 'W1' | 'W2') => {
    const list: Workload[] = [];
    for (const pairs of [100, 1000]) for (const window of [1, 10]) for (const size of [64, 1024]) list.push(relayWorkload(group, pairs, window, size));
    return list;
  };
  return [
    { name: 'W1', title: 'direct relay, one node', topology: 'single', freshPerMeasurement: false, workloads: [...matrix('W1'), fixedRateWorkload('W1')] },
    { name: 'W2', title: 'direct relay, two nodes through Redis', topology: 'two-node', freshPerMeasurement: false, workloads: [...matrix('W2'), fixedRateWorkload('W2')] },
    {
      name: 'W2C',
      title: 'direct relay, two nodes through a 3-master Redis Cluster (sharded pub/sub)',
      topology: 'two-node-cluster',
      freshPerMeasurement: false,
      workloads: [100, 1000].flatMap((pairs) => [1, 10].map((window) => relayWorkload('W2C', pairs, window, 64))),
    },
    ...capacityGroups(o),
    { name: 'W3', title: 'room fan-out', topology: 'single', freshPerMeasurement: true, workloads: [fanoutWorkload(1), fanoutWorkload(10)] },
    { name: 'W4', title: 'memory per idle connection', topology: 'single', freshPerMeasurement: true, workloads: [idleWorkload(o.idleConns, 'binary'), idleWorkload(o.idleConns, 'image')] },
    { name: 'W5', title: 'connection rate', topology: 'single', freshPerMeasurement: false, workloads: [connectWorkload()] },
    callSetupGroup(),
    tunnelGroup(),
    stormGroup(),
  ];
}
