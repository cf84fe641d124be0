// The systems under test: the raw uWebSockets.js baseline and Switchboard,
// deployed on one node, or two nodes sharing a redis-server on a free port or
// a local 3-master Redis Cluster (redis-cluster.ts).
import { NODE_FLAGS } from '../../src/cli/node-flags';
import { Child, freePort, parseJson } from './processes';
import { HOST, RAW_RELAY, SWITCHBOARD_CLI } from './paths';
import { ensureRedisCluster, redisClusterEndpoints, redisClusterPids } from './redis-cluster';
import { JWT_SECRET } from './tokens';

export type SystemName = 'raw' | 'switchboard';
export const SYSTEMS: readonly SystemName[] = ['raw', 'switchboard'];
export const SYSTEM_LABEL: Record<SystemName, string> = { raw: 'baseline', switchboard: 'switchboard' };

export interface Server {
  name: string;
  port: number;
  child: Child;
}

/** One system's servers for a group: `nodes[0]` serves receivers/members, `nodes[1]` (two-node) the senders. */
export interface Deployment {
  system: SystemName;
  nodes: Server[];
}

let redis: { url: string; child: Child } | undefined;

export async function ensureRedis(): Promise<string> {
  if (redis !== undefined) return redis.url;
  const port = await freePort();
  const child = new Child('redis-server', 'redis-server', ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no'], {
    PATH: process.env.PATH,
  });
  await child.waitFor((line) => (line.includes('Ready to accept connections') ? true : undefined), 10_000, 'ready line');
  redis = { url: `redis://${HOST}:${port}`, child };
  return redis.url;
}

/** A redis-server of its own on a free port (not the shared one: nothing else's keys in it), stopped by the caller. */
export async function startPrivateRedis(): Promise<{ url: string; child: Child }> {
  const port = await freePort();
  const child = new Child('redis-private', 'redis-server', ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no'], { PATH: process.env.PATH });
  await child.waitFor((line) => (line.includes('Ready to accept connections') ? true : undefined), 10_000, 'ready line');
  return { url: `redis://${HOST}:${port}`, child };
}

/** The PIDs of the Redis servers running (the shared one, the cluster's masters), for CPU sampling. */
export function redisPids(): number[] {
  return [...(redis?.child.pid === undefined ? [] : [redis.child.pid]), ...redisClusterPids()];
}

/** `host:port` of the same Redis servers, in the same order, for their INFO counters (redis-counters.ts). */
export function redisEndpoints(): string[] {
  return [...(redis === undefined ? [] : [redis.url.replace(/^redis:\/\//, '')]), ...redisClusterEndpoints()];
}

/** Stops the shared redis-server; a later ensureRedis() starts a new one (the W6 profile runs after the groups). */
export async function stopRedis(): Promise<void> {
  const stopping = redis;
  redis = undefined;
  await stopping?.child.stop();
}

/**
 * How a node is started. `bench`: `node <NODE_FLAGS> <bin> serve`, with room for more Node flags (profiles).
 * As users start it (W4 measures both): `binary` runs `<bin> serve` itself, as the installed `switchboard`
 * command does (its shebang carries NODE_FLAGS); `image` runs `node <bin> serve` with NODE_FLAGS in
 * NODE_OPTIONS, as the Dockerfile's ENTRYPOINT and ENV and the k8s Deployment (which keeps that
 * entrypoint and sets the same NODE_OPTIONS) do.
 */
export type Launch = 'bench' | 'binary' | 'image';

export async function startSwitchboard(
  name: string,
  redisUrl?: string,
  nodeArgs: string[] = [],
  extraEnv: NodeJS.ProcessEnv = {},
  launch: Launch = 'bench',
): Promise<Server> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PORT: '0',
    HOST,
    NODE_ID: name,
    JWT_SECRET,
    // `info` is needed for the "switchboard listening" line; the logs are read and discarded.
    LOG_LEVEL: 'info',
    RATE_LIMIT_POINTS: '1000000000',
    MAX_CONNECTIONS_PER_IP: '0',
    CONNECT_RATE_PER_IP: '0',
    MAX_CONNECTIONS: '0',
    DRAIN_SPREAD_MS: '0',
    SHUTDOWN_TIMEOUT_MS: '5000',
    ...(redisUrl === undefined ? {} : { REDIS_URL: redisUrl }),
    ...extraEnv,
  };
  // The flags it is deployed with (src/cli/node-flags.ts), so the bench measures what runs in production.
  if (launch === 'binary') return listening(name, new Child(name, SWITCHBOARD_CLI, ['serve'], env), 'switchboard listening');
  if (launch === 'image') {
    const imageEnv = { ...env, NODE_OPTIONS: NODE_FLAGS.join(' ') };
    return listening(name, new Child(name, process.execPath, [SWITCHBOARD_CLI, 'serve'], imageEnv), 'switchboard listening');
  }
  const args = [...NODE_FLAGS, ...nodeArgs, SWITCHBOARD_CLI, 'serve'];
  return listening(name, new Child(name, process.execPath, args, env), 'switchboard listening');
}

/** `--uncorked-baseline`: the raw relay writes each frame at once (the first round's baseline) instead of corked per turn. */
let rawRelayFlags: string[] = [];
export function useUncorkedBaseline(): void {
  rawRelayFlags = ['--uncorked'];
}

export async function startRaw(name: string, redisUrl?: string, clusterNodes?: string): Promise<Server> {
  const redisArgs = clusterNodes !== undefined ? ['--redis-cluster', clusterNodes] : redisUrl !== undefined ? ['--redis', redisUrl] : [];
  const args = [RAW_RELAY, '--host', HOST, '--port', '0', ...redisArgs, ...(redisArgs.length > 0 ? ['--prefix', 'raw:'] : []), ...rawRelayFlags];
  return listening(name, new Child(name, process.execPath, args, { PATH: process.env.PATH, HOME: process.env.HOME }), 'raw listening');
}

/** Waits for the child's JSON log line `{ msg, port }` announcing its listening port. */
async function listening(name: string, child: Child, msg: string): Promise<Server> {
  const port = await child.waitFor(
    (line) => {
      const rec = parseJson(line);
      return rec?.msg === msg && typeof rec.port === 'number' ? rec.port : undefined;
    },
    20_000,
    `"${msg}" line`,
  );
  return { name, port, child };
}

export type Topology = 'single' | 'two-node' | 'two-node-cluster';

export async function deploy(system: SystemName, topology: Topology, launch: Launch = 'bench'): Promise<Deployment> {
  const redisUrl = topology === 'two-node' ? await ensureRedis() : undefined;
  const clusterNodes = topology === 'two-node-cluster' ? await ensureRedisCluster() : undefined;
  const start = (name: string) =>
    system === 'raw'
      ? startRaw(name, redisUrl, clusterNodes)
      : startSwitchboard(name, redisUrl, [], clusterNodes === undefined ? {} : { REDIS_CLUSTER_NODES: clusterNodes, REDIS_PREFIX: 'bench:' }, launch);
  const nodes = topology === 'single' ? [await start(`${system}-1`)] : [await start(`${system}-recv`), await start(`${system}-send`)];
  return { system, nodes };
}

export async function undeploy(d: Deployment): Promise<void> {
  await Promise.all(d.nodes.map((n) => n.child.stop()));
}
