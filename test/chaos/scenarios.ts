// The chaos scenarios of issue 15, shared by the `npm test` form
// (chaos.test.ts, SHORT) and the full runner (run.ts, FULL). Each one starts
// its own cluster, runs traffic through HAProxy, injects its fault while the
// traffic flows, stops sending, settles (polls until every acknowledged
// message is delivered and every message on a live connection answered, or
// a bound passes) and returns the ledger's verdict with the recovery times.
//
//   connect all ─▶ send ─(warm)─▶ FAULT ─(after)─▶ stop sending ─▶ settle ─▶ verdict
//
// Phase lengths are traffic durations, not waits for something to happen:
// everything the scenario waits *for* is polled with a bound.
import type { TestContext } from 'node:test';
import { eventually } from '../helpers/eventually';
import { TestClient } from '../helpers/ws-client';
import { startChaosCluster, type ChaosCluster, type ClusterOptions } from './cluster';
import { Ledger, type Figures } from './ledger';
import { appToken, Traffic, type ClientStats } from './traffic';

export interface Size {
  clients: number;
  ratePerClient: number;
  /** Traffic before the fault, and after it. */
  warmMs: number;
  afterMs: number;
  /** How long Redis stays down in the restart scenario. */
  outageMs: number;
  /** Bound of the settle. */
  settleMs: number;
  /** Users connected straight to the killed node, watched from the others (kill scenario). */
  sitters: number;
  failover: 'command' | 'kill';
  /** Node settings on top of CHAOS_NODE_ENV. */
  env: Record<string, string>;
}

export const SHORT: Size = {
  clients: 60,
  ratePerClient: 5,
  warmMs: 1500,
  afterMs: 2000,
  outageMs: 2000,
  settleMs: 10_000,
  sitters: 4,
  failover: 'command',
  env: {},
};

export const FULL: Size = {
  clients: 300,
  ratePerClient: 4,
  warmMs: 10_000,
  afterMs: 10_000,
  outageMs: 5000,
  settleMs: 30_000,
  sitters: 20,
  failover: 'kill',
  env: { DRAIN_SPREAD_MS: '3000' },
};

export interface Recovery {
  event: string;
  /** Clients on the node when it went. */
  clients: number;
  /** ms until every one of them was welcomed again; undefined: not within the bound. */
  backMs: number | undefined;
  /** Exit of the node (code/signal), where there was one. */
  exit?: string;
}

export interface ScenarioResult {
  name: ScenarioName;
  figures: Figures;
  clients: ClientStats;
  recoveries: Recovery[];
  /** ms from the fault until the watchers had seen every sitter offline (kill scenario). */
  offlineSeenMs?: number | undefined;
  /** Offline pushes the watchers got for traffic users (who never leave for long: each one is a flap). */
  trafficOfflinePushes?: number;
  /** ms from the fault until HAProxy had every node UP again (Redis scenarios). */
  allUpMs?: number | undefined;
  /** ms from the fault until the sentinels had promoted the replica (Sentinel scenario). */
  promotedMs?: number;
  /** How the failover was caused: `SENTINEL FAILOVER`, or SIGKILL of the master. */
  failover?: Size['failover'];
  /** ms the settle took; undefined: the bound passed with messages outstanding. */
  settleMs: number | undefined;
  durationMs: number;
  /** The first few acknowledged-but-undelivered messages. */
  lostSample: string[];
  /** What the nodes logged at warn and above, by level and message. */
  nodeProblems: Map<string, number>;
}

export type ScenarioName = 'baseline' | 'rolling' | 'kill' | 'redis' | 'sentinel';
export const SCENARIOS: readonly ScenarioName[] = ['baseline', 'rolling', 'kill', 'redis', 'sentinel'];

const runFor = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Run {
  cluster: ChaosCluster;
  traffic: Traffic;
  ledger: Ledger;
  result: Partial<ScenarioResult> & { recoveries: Recovery[] };
  /** Figures read once the settle is over (things that can still happen after the fault's own phase). */
  atEnd: (() => void)[];
}

async function withTraffic(t: TestContext, name: ScenarioName, size: Size, redis: ClusterOptions['redis'], fault: (run: Run) => Promise<void>): Promise<ScenarioResult> {
  const started = performance.now();
  const cluster = await startChaosCluster(t, { redis, env: size.env });
  const ledger = new Ledger();
  const traffic = new Traffic({ url: cluster.url, clients: size.clients, ratePerClient: size.ratePerClient, ledger });
  t.after(() => traffic.terminate());
  await traffic.connect();
  const run: Run = { cluster, traffic, ledger, result: { recoveries: [] }, atEnd: [] };
  traffic.startSending();
  await runFor(size.warmMs);
  await fault(run);
  await runFor(size.afterMs);
  traffic.stopSending();

  // Settle: every acknowledged message delivered, every message on a live connection answered, everyone back.
  const settleStart = performance.now();
  let settleMs: number | undefined;
  try {
    await eventually(
      () => {
        const { unanswered, undelivered } = ledger.outstanding();
        const away = traffic.clients.filter((c) => c.status !== 'live' && c.status !== 'stopped').length;
        if (unanswered + undelivered + away > 0) throw new Error(`${unanswered} unanswered, ${undelivered} undelivered, ${away} clients away`);
      },
      size.settleMs,
      50,
    );
    settleMs = performance.now() - settleStart;
  } catch (_boundPassed) {
    // The verdict reports what is still outstanding.
    settleMs = undefined;
  }
  const figures = ledger.verdict();
  for (const read of run.atEnd) read();
  traffic.stop();
  return {
    name,
    figures,
    clients: traffic.stats,
    settleMs,
    durationMs: performance.now() - started,
    lostSample: ledger.sampleLost(),
    nodeProblems: cluster.problems(),
    ...run.result,
  };
}

const describeExit = (e: { code: number | null; signal: string | null }) => (e.signal === null ? `code ${e.code}` : e.signal);

/** No fault: the harness's own check (every message acked and delivered once, in order). */
export function baseline(t: TestContext, size: Size): Promise<ScenarioResult> {
  return withTraffic(t, 'baseline', size, 'single', () => Promise.resolve());
}

/** 1. Rolling restart: each node in turn SIGTERM → drain → exit → start on the same port → UP in HAProxy. */
export function rolling(t: TestContext, size: Size): Promise<ScenarioResult> {
  return withTraffic(t, 'rolling', size, 'single', async ({ cluster, traffic, result }) => {
    for (const [i, name] of cluster.names.entries()) {
      const group = traffic.on(name);
      const since = performance.now();
      const back = traffic.recovered(group, since, 30_000);
      const exit = await cluster.restart(i);
      result.recoveries.push({ event: `SIGTERM ${name}`, clients: group.length, backMs: await back, exit: describeExit(exit) });
    }
  });
}

interface Watchers {
  count: number;
  /** performance.now() of the first offline push for a user, one entry per watcher that saw one. */
  offlineAt: Map<string, number[]>;
  /** Offline pushes for `users`, all watchers together. */
  offlinePushes(users: readonly string[]): number;
}

/** One watcher straight to each node but `skip`, watching `users` (100 a frame), recording offline pushes. */
async function watchers(t: TestContext, cluster: ChaosCluster, users: readonly string[], skip: readonly number[] = []): Promise<Watchers> {
  const offlineAt = new Map<string, number[]>();
  const pushes = new Map<string, number>();
  const seen = new Set<string>();
  let count = 0;
  for (const [i, port] of cluster.ports.entries()) {
    if (skip.includes(i)) continue;
    const w = await TestClient.welcomed(port, appToken(`watcher${i}`));
    t.after(() => w.close());
    w.ws.on('message', (data: Buffer) => {
      const f = JSON.parse(data.toString('utf8')) as { type?: string; user?: string; status?: string };
      if (f.type !== 'presence' || f.status !== 'offline' || typeof f.user !== 'string') return;
      pushes.set(f.user, (pushes.get(f.user) ?? 0) + 1);
      if (seen.has(`${i}/${f.user}`)) return;
      seen.add(`${i}/${f.user}`);
      offlineAt.set(f.user, [...(offlineAt.get(f.user) ?? []), performance.now()]);
    });
    for (let k = 0; k < users.length; k += 100) {
      const reply = await w.request({ type: 'watch', users: users.slice(k, k + 100) }, 'watching');
      if (reply.type !== 'watching') throw new Error(`watch refused: ${JSON.stringify(reply)}`);
    }
    count++;
  }
  return { count, offlineAt, offlinePushes: (of) => of.reduce((n, u) => n + (pushes.get(u) ?? 0), 0) };
}

/** 2. kill -9 of one node: watchers elsewhere see its users offline; its traffic clients come back through HAProxy with resume. */
export function kill(t: TestContext, size: Size): Promise<ScenarioResult> {
  return withTraffic(t, 'kill', size, 'single', async ({ cluster, traffic, ledger, result, atEnd }) => {
    const victim = 0;
    const victimName = cluster.names[victim] as string;
    const sitterIds = Array.from({ length: size.sitters }, (_, i) => `sitter${i}`);
    const sitters = await Promise.all(sitterIds.map((u) => TestClient.welcomed(cluster.ports[victim] as number, appToken(u))));
    t.after(() => sitters.forEach((s) => s.close()));
    // One watcher on each surviving node, straight to its port, watching the sitters and every traffic user.
    const watch = await watchers(t, cluster, [...sitterIds, ...traffic.users], [victim]);
    const group = traffic.on(victimName);
    const since = performance.now();
    const back = traffic.recovered(group, since, 30_000);
    const ttl = Number(cluster.env.PRESENCE_TTL_MS);
    ledger.fault(performance.now(), ttl);
    const exit = await cluster.kill(victim);
    try {
      await eventually(() => {
        const seen = sitterIds.filter((u) => (watch.offlineAt.get(u)?.length ?? 0) === watch.count).length;
        if (seen < sitterIds.length) throw new Error(`${seen} of ${sitterIds.length} sitters seen offline by every watcher`);
      }, ttl + 20_000, 20);
      result.offlineSeenMs = Math.max(...sitterIds.flatMap((u) => watch.offlineAt.get(u) ?? [])) - since;
    } catch (_notSeen) {
      result.offlineSeenMs = undefined;
    }
    result.recoveries.push({ event: `SIGKILL ${victimName}`, clients: group.length, backMs: await back, exit: describeExit(exit) });
    atEnd.push(() => (result.trafficOfflinePushes = watch.offlinePushes(traffic.users)));
  });
}

/** Polls HAProxy until every node is UP again; the ms since `since`, or undefined at the bound. */
async function allUp(cluster: ChaosCluster, since: number, timeoutMs: number): Promise<number | undefined> {
  try {
    await eventually(async () => {
      const statuses = await cluster.front.statuses();
      if (!Object.values(statuses).every((s) => s === 'UP')) throw new Error(JSON.stringify(statuses));
    }, timeoutMs, 50);
    return performance.now() - since;
  } catch (_notUp) {
    return undefined;
  }
}

/** 3. Redis restart mid-traffic: SIGKILL, `outageMs` of traffic without it, start again on the same port (empty). */
export function redisRestart(t: TestContext, size: Size): Promise<ScenarioResult> {
  return withTraffic(t, 'redis', size, 'single', async ({ cluster, traffic, result, atEnd }) => {
    const redis = cluster.redis;
    if (redis === undefined) throw new Error('no redis');
    const watch = await watchers(t, cluster, traffic.users);
    const since = performance.now();
    await redis.stop(true);
    await runFor(size.outageMs);
    await redis.start();
    result.allUpMs = await allUp(cluster, since, 30_000);
    atEnd.push(() => (result.trafficOfflinePushes = watch.offlinePushes(traffic.users)));
  });
}

/** 4. Sentinel failover mid-traffic: SENTINEL FAILOVER, or SIGKILL of the master and promotion by the sentinel. */
export function sentinelFailover(t: TestContext, size: Size): Promise<ScenarioResult> {
  return withTraffic(t, 'sentinel', size, 'sentinel', async ({ cluster, traffic, result, atEnd }) => {
    const sentinel = cluster.sentinel;
    if (sentinel === undefined) throw new Error('no sentinel');
    const watch = await watchers(t, cluster, traffic.users);
    const since = performance.now();
    await sentinel.failover(size.failover);
    result.promotedMs = performance.now() - since;
    result.failover = size.failover;
    result.allUpMs = await allUp(cluster, since, 30_000);
    atEnd.push(() => (result.trafficOfflinePushes = watch.offlinePushes(traffic.users)));
  });
}

export const RUNNERS: Record<ScenarioName, (t: TestContext, size: Size) => Promise<ScenarioResult>> = {
  baseline,
  rolling,
  kill,
  redis: redisRestart,
  sentinel: sentinelFailover,
};
