// The chaos cluster: Redis (one server, or a Sentinel group that can fail
// over), three `switchboard serve` processes on fixed free ports named as
// the shipped HAProxy servers (node1..node3), and HAProxy from the shipped
// config in front. Everything is a real process on loopback, killed by PID
// in the test's teardown (spawnNode, startRedis, startHaproxy do that).
//
//   clients ─▶ HAProxy :frontend ─▶ node1 :p1 ─┐
//                                ├─▶ node2 :p2 ─┼─▶ redis (or sentinel → master/replica)
//                                └─▶ node3 :p3 ─┘
import type { TestContext } from 'node:test';
import { HAPROXY_SERVERS, startHaproxyFront, type HaproxyFront } from '../helpers/haproxy-front';
import { TEST_SECRET } from '../helpers/node';
import { spawnNode, type Exited, type SpawnedNode } from '../helpers/process';
import { startRedisFailover, type FailoverDeployment } from '../helpers/redis-failover';
import { freePort, startRedis, type RedisServer } from '../helpers/redis';

export interface ClusterOptions {
  redis: 'single' | 'sentinel';
  /** Node settings; the defaults below keep every phase short. */
  env?: Record<string, string>;
}

/** Settings for every node: fast presence expiry and drain, a resume window longer than any test, no rate limiting of the test traffic. */
export const CHAOS_NODE_ENV: Readonly<Record<string, string>> = {
  JWT_SECRET: TEST_SECRET,
  TRUSTED_PROXIES: '127.0.0.1',
  LOG_LEVEL: 'info',
  PRESENCE_TTL_MS: '3000',
  RESUME_WINDOW_S: '300',
  RESUME_BUFFER: '10000',
  DRAIN_SPREAD_MS: '1000',
  SHUTDOWN_TIMEOUT_MS: '10000',
  RATE_LIMIT_POINTS: '100000',
  RATE_LIMIT_STRIKES: '100000',
};

export interface ChaosCluster {
  front: HaproxyFront;
  /** ws://127.0.0.1:<frontend>/ws */
  url: string;
  names: readonly string[];
  ports: readonly number[];
  env: Readonly<Record<string, string>>;
  node(index: number): SpawnedNode;
  /** SIGTERM, wait for the exit (bounded), start again on the same port, wait until HAProxy has it UP. */
  restart(index: number, onExit?: (exit: Exited) => void): Promise<Exited>;
  /** SIGKILL; resolves once the process is gone. */
  kill(index: number): Promise<Exited>;
  /** Starts a stopped node again on its port and waits until HAProxy has it UP. */
  start(index: number): Promise<void>;
  redis: RedisServer | undefined;
  sentinel: FailoverDeployment | undefined;
  /** Warnings and errors every node process so far logged (pino warn and above), counted by level and message. */
  problems(): Map<string, number>;
}

export async function startChaosCluster(t: TestContext, options: ClusterOptions): Promise<ChaosCluster> {
  let redis: RedisServer | undefined;
  let sentinel: FailoverDeployment | undefined;
  let redisEnv: Record<string, string>;
  if (options.redis === 'single') {
    redis = await startRedis(t);
    redisEnv = { REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix };
  } else {
    sentinel = await startRedisFailover(t);
    redisEnv = { REDIS_SENTINELS: sentinel.sentinels, REDIS_SENTINEL_NAME: sentinel.name, REDIS_PREFIX: sentinel.prefix };
  }
  const env = { ...CHAOS_NODE_ENV, ...redisEnv, ...options.env };
  const names = [...HAPROXY_SERVERS];
  const ports: number[] = [];
  while (ports.length < names.length) {
    const port = await freePort();
    if (!ports.includes(port)) ports.push(port);
  }
  const spawned: SpawnedNode[] = [];
  const launch = async (i: number) => {
    const node = await spawnNode(t, { ...env, PORT: String(ports[i]), NODE_ID: names[i] as string }, ['serve'], 20_000);
    spawned.push(node);
    return node;
  };
  const nodes: SpawnedNode[] = await Promise.all(names.map((_, i) => launch(i)));
  const front = await startHaproxyFront(t, ports);
  const at = (i: number) => {
    const node = nodes[i];
    if (node === undefined) throw new Error(`no node ${i}`);
    return node;
  };
  const start = async (i: number) => {
    nodes[i] = await launch(i);
    await front.waitFor(names[i] as string, 'UP', 20_000);
  };
  const shutdownBound = Number(env.SHUTDOWN_TIMEOUT_MS) + Number(env.DRAIN_SPREAD_MS) + 10_000;
  return {
    front,
    url: `ws://127.0.0.1:${front.frontendPort}/ws`,
    names,
    ports,
    env,
    node: at,
    async restart(i, onExit) {
      const node = at(i);
      node.kill('SIGTERM');
      const exit = await bounded(node.exited, shutdownBound, `${names[i]} did not exit within ${shutdownBound} ms of SIGTERM`);
      onExit?.(exit);
      await start(i);
      return exit;
    },
    async kill(i) {
      const node = at(i);
      node.kill('SIGKILL');
      return node.exited;
    },
    start,
    redis,
    sentinel,
    problems() {
      const out = new Map<string, number>();
      for (const node of spawned) {
        for (const record of node.logs) {
          // pino writes the level as a label here (formatters.level), as a number by default.
          const level = typeof record.level === 'number' ? (record.level >= 50 ? 'error' : record.level >= 40 ? 'warn' : '') : String(record.level);
          if (!['warn', 'error', 'fatal'].includes(level)) continue;
          // Which node was reaped tells a dead peer's cleanup from a live one's.
          const label = `${level}: ${String(record.msg)}${typeof record.deadNode === 'string' ? ` (${record.deadNode})` : ''}`;
          out.set(label, (out.get(label) ?? 0) + 1);
        }
      }
      return out;
    },
  };
}

function bounded<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
