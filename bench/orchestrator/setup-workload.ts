// W7, the call-setup storm (issue 16): what a mobile app creates at 9 a.m.
//
// 15,000 idle authenticated connections stay connected (half on each node)
// while caller/callee pairs, callers on one node and callees on the other, one
// Redis between them, run full WebRTC setups: the caller sends an offer and 10
// ICE candidates at once (trickle ICE), the callee answers the offer's arrival
// with an answer and 10 candidates; every frame carries an `id` and is
// acknowledged. A setup is done when both sides hold every ack and every frame
// of the other; its time runs from the offer sent to that moment (loadgen's
// `setup` mode). The baseline is the raw relay doing the same exchange, each
// frame answered with a fixed ack once handed on (`ack=1`).
//
// Two measurements per round and system: the most setups/s the pairs reach
// back to back (closed loop), and the setup time at a fixed offered rate,
// half of the lower of the two systems' maxima from the same round (open
// loop, as the relay's fixed-rate workloads).
import { holdIdleConnections, protocolArgs, runLoadgen, type IdleConnections, type Measurement } from './loadgen';
import type { Group, RoundContext, Workload } from './model';
import type { Deployment } from './systems';

/** Caller/callee pairs: enough to keep both nodes busy, few enough to leave the tail readable. */
const PAIRS = 500;
/** Payload sizes: an SDP of a small audio/video offer, and an ICE candidate line (100–300 B). */
const SDP_BYTES = 1024;
const CANDIDATE_BYTES = 200;
const CANDIDATES = 10;
/** A setup not done within this long has lost a frame or an ack: counted failed, its pair retired. */
const STALL_S = 10;

/** Holds the idle connections on both nodes, the setup runs, then lets the idle connections go. */
async function withIdleConnections(d: Deployment, ctx: RoundContext, run: () => Promise<Measurement>): Promise<Measurement> {
  const o = ctx.options;
  const perNode = Math.floor(o.idleConns / d.nodes.length);
  const held: IdleConnections[] = [];
  try {
    for (const [n, node] of d.nodes.entries())
      held.push(await holdIdleConnections(node, d.system, ctx.tokens, perNode, { sources: o.idleSources, indexBase: n * perNode }));
    return { ...(await run()), idle_conns: perNode * d.nodes.length };
  } finally {
    await Promise.all(held.map((h) => h.close()));
  }
}

function setupArgs(d: Deployment, ctx: RoundContext, extra: string[]): string[] {
  const [calleeNode, callerNode] = d.nodes;
  if (calleeNode === undefined || callerNode === undefined) throw new Error('W7 needs two nodes');
  const o = ctx.options;
  return [
    ...['--mode', 'setup', '--port', String(calleeNode.port), '--port2', String(callerNode.port), '--count', String(PAIRS)],
    ...['--size', String(SDP_BYTES), '--cand-size', String(CANDIDATE_BYTES), '--candidates', String(CANDIDATES)],
    // Setups are long (tens of ms under load): a longer window than the relay's gives the percentiles enough samples.
    ...['--warmup', String(o.warmupS), '--duration', String(o.durationS * 2), '--settle-ms', String(o.settleMs), '--stall-s', String(STALL_S)],
    ...protocolArgs(d.system, 'setup', ctx.tokens),
    ...extra,
  ];
}

const maxRate: Workload = {
  id: `W7-p${PAIRS}-max`,
  title: `W7 call setups, ${PAIRS} pairs back to back, 15k idle`,
  params: { pairs: PAIRS, candidates: CANDIDATES, sdp: SDP_BYTES, candidate: CANDIDATE_BYTES },
  metrics: [
    { key: 'setups_per_s', label: 'setups/s', unit: 'setup/s', target: { kind: 'ratio', min: 0.7 } },
    { key: 'p50_us', label: 'setup p50', unit: 'µs' },
    { key: 'p99_us', label: 'setup p99', unit: 'µs' },
  ],
  measure: (d, ctx) => withIdleConnections(d, ctx, () => runLoadgen(setupArgs(d, ctx, []), d.nodes, 180)),
};

const fixedRate: Workload = {
  id: `W7-p${PAIRS}-rate-half-max`,
  title: `W7 call setups at ½ the lower max rate, 15k idle`,
  params: { pairs: PAIRS, candidates: CANDIDATES },
  metrics: [
    { key: 'setups_per_s', label: 'offered rate (setups/s)', unit: 'setup/s' },
    { key: 'p50_us', label: 'setup p50', unit: 'µs' },
    { key: 'p99_us', label: 'setup p99', unit: 'µs', target: { kind: 'ratioAtMost', max: 1.5 } },
    { key: 'p999_us', label: 'setup p99.9', unit: 'µs' },
  ],
  measure: (d, ctx) => {
    const max = Math.min(...(['raw', 'switchboard'] as const).map((system) => Number(ctx.results.get(maxRate.id)?.[system]?.setups_per_s ?? 0)));
    if (!(max > 0)) throw new Error('needs W7 maxima for both systems from this round');
    return withIdleConnections(d, ctx, () => runLoadgen(setupArgs(d, ctx, ['--rate', String(Math.round(max / 2))]), d.nodes, 180));
  },
};

export function callSetupGroup(): Group {
  return { name: 'W7', title: 'call-setup storm, two nodes through Redis', topology: 'two-node', freshPerMeasurement: false, workloads: [maxRate, fixedRate] };
}
