// Redis connections for a cluster node, for the three supported topologies:
// one server (REDIS_URL), a Sentinel group (REDIS_SENTINELS + REDIS_SENTINEL_NAME)
// or a Redis Cluster (REDIS_CLUSTER_NODES, sharded pub/sub).
//
// Two clients: `commands` (publishes, presence, rate limits) and `subscriber`
// (pub/sub mode). `commands` has no offline queue: while Redis is down a
// command fails at once, so a sender hears `unavailable` instead of waiting
// on a queue that may never drain. The subscriber keeps its queue so that
// subscribes made during an outage apply on reconnect, and ioredis
// re-subscribes every channel after a reconnect by itself.
import Redis, { Cluster, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Config } from '../config/load';
import type { Logger } from '../log/logger';

export type RedisClient = Redis | Cluster;

export interface RedisClients {
  commands: RedisClient;
  subscriber: RedisClient;
  /** Redis Cluster: SPUBLISH/SSUBSCRIBE and per-slot commands. */
  sharded: boolean;
  topology: 'single' | 'sentinel' | 'cluster';
  /** Whether every shard answers (Redis Cluster: each slot's master has a ready connection; elsewhere always true). */
  readonly shardsUp: () => boolean;
  close(): Promise<void>;
}

/** How long a slot-coverage answer is reused: `isUp` is asked on every publish. */
const COVERAGE_CHECK_MS = 500;
const SLOTS = 16384;

/**
 * Whether every slot's master has a ready connection on `cluster` (one that connects to every
 * master at start: the subscriber). A master that dies takes its slots' users, channels and keys
 * with it: the node is not healthy then, though its other connections are (and its own probe
 * channel may live on a healthy shard).
 */
function slotCoverage(cluster: Cluster): () => boolean {
  let checkedAt = -Infinity;
  let up = true;
  return () => {
    const now = performance.now();
    if (now - checkedAt < COVERAGE_CHECK_MS) return up;
    checkedAt = now;
    const ready = new Set(cluster.nodes('master').filter((node) => node.status === 'ready').map((node) => `${node.options.host}:${node.options.port}`));
    up = true;
    for (let slot = 0; slot < SLOTS && up; slot++) {
      const master = cluster.slots[slot]?.[0];
      up = master !== undefined && ready.has(master);
    }
    return up;
  };
}

/** Reconnect quickly at first, then every 2 s: an outage should end as soon as Redis is back. */
const COMMAND_TIMEOUT_MS = 2000;

const retryStrategy = (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000);

export function hasRedis(config: Config): boolean {
  return config.REDIS_URL !== undefined || config.REDIS_SENTINELS.length > 0 || config.REDIS_CLUSTER_NODES.length > 0;
}

function hostPort(value: string): { host: string; port: number } {
  const colon = value.lastIndexOf(':');
  return { host: value.slice(0, colon), port: Number(value.slice(colon + 1)) };
}

export async function connectRedis(config: Config, logger: Logger): Promise<RedisClients> {
  const base: RedisOptions = {
    retryStrategy,
    connectTimeout: 5000,
    // A command either runs now or fails; the router turns failures into `unavailable`.
    maxRetriesPerRequest: 1,
    lazyConnect: true,
    connectionName: `switchboard:${config.nodeId}`,
    ...(config.REDIS_USERNAME === undefined ? {} : { username: config.REDIS_USERNAME }),
    ...(config.REDIS_PASSWORD === undefined ? {} : { password: config.REDIS_PASSWORD }),
    ...(config.REDIS_TLS ? { tls: {} } : {}),
  };
  // A stalled Redis (network partition, SIGSTOP) must not hold a sender forever: after 2 s the
  // command fails and the sender hears `unavailable` (the message may still arrive later).
  // Auto-pipelining: the commands of one event-loop turn leave in one write. A connect costs a
  // handful of commands (lease, presence, resume claim, rate limit); written one by one they were
  // most of a node's CPU in a reconnect storm (bench W8: 10,000 clients back in 8–12 s instead of
  // ~5.5, and p99 ~600 ms instead of ~250 for other traffic). Order is kept: ioredis queues a
  // turn's commands in the order they were issued, and the ones it cannot pipeline (SUBSCRIBE,
  // MULTI) go on the subscriber connection or are not used.
  const commandOptions: RedisOptions = { ...base, enableOfflineQueue: false, commandTimeout: COMMAND_TIMEOUT_MS, enableAutoPipelining: true };
  const subscriberOptions: RedisOptions = { ...base, enableOfflineQueue: true, maxRetriesPerRequest: null };

  let clients: RedisClients;
  if (config.REDIS_CLUSTER_NODES.length > 0) {
    const nodes = config.REDIS_CLUSTER_NODES.map(hostPort);
    const clusterOptions = (redisOptions: RedisOptions, sharded: boolean): ClusterOptions => ({
      redisOptions,
      clusterRetryStrategy: retryStrategy,
      clusterNodeRetryStrategy: retryStrategy,
      enableOfflineQueue: redisOptions.enableOfflineQueue ?? true,
      enableAutoPipelining: redisOptions.enableAutoPipelining ?? false,
      lazyConnect: true,
      shardedSubscribers: sharded,
    });
    const commands = new Cluster(nodes, clusterOptions(commandOptions, false));
    // ioredis keeps one sharded-subscriber connection per master. With `lazyConnect` in its
    // redisOptions it opens a shard's connection only at the first SSUBSCRIBE there, which then
    // waits for a TCP connect and handshake: long enough for a peer's first message to a user
    // who just connected to find nobody subscribed (peer_offline, or a device missed). Open
    // them all with the cluster, so a subscribe costs one round trip as on one server.
    const subscriber = new Cluster(nodes, clusterOptions({ ...subscriberOptions, lazyConnect: false }, true));
    clients = { commands, subscriber, sharded: true, topology: 'cluster', shardsUp: slotCoverage(subscriber), close: () => quitAll(commands, subscriber) };
  } else if (config.REDIS_SENTINELS.length > 0) {
    const sentinel: RedisOptions = { sentinels: config.REDIS_SENTINELS.map(hostPort), name: config.REDIS_SENTINEL_NAME ?? '' };
    if (config.REDIS_PASSWORD !== undefined) sentinel.sentinelPassword = config.REDIS_PASSWORD;
    const commands = new Redis({ ...commandOptions, ...sentinel });
    const subscriber = new Redis({ ...subscriberOptions, ...sentinel });
    clients = { commands, subscriber, sharded: false, topology: 'sentinel', shardsUp: () => true, close: () => quitAll(commands, subscriber) };
  } else {
    const url = config.REDIS_URL ?? 'redis://127.0.0.1:6379';
    const commands = new Redis(url, commandOptions);
    const subscriber = new Redis(url, subscriberOptions);
    clients = { commands, subscriber, sharded: false, topology: 'single', shardsUp: () => true, close: () => quitAll(commands, subscriber) };
  }
  for (const [role, client] of [
    ['commands', clients.commands],
    ['subscriber', clients.subscriber],
  ] as const) {
    // ioredis reconnects by itself; these lines make an outage visible in the logs once per change.
    client.on('error', (error: Error) => logger.debug({ err: error.message, role }, 'redis error'));
    client.on('close', () => logger.warn({ role }, 'redis connection lost'));
    client.on('ready', () => logger.info({ role, topology: clients.topology }, 'redis connected'));
  }
  try {
    await Promise.all([clients.commands.connect(), clients.subscriber.connect()]);
  } catch (error) {
    // Refuse to start rather than serve as a node that cannot reach its cluster;
    // an orchestrator restarts us, and a running node survives outages (see README).
    await clients.close();
    throw new Error(`cannot reach Redis (${clients.topology}): ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  return clients;
}

const QUIT_TIMEOUT_MS = 1000;

/** QUIT when connected (Redis drops our subscriptions at once); with Redis down, just drop the sockets. */
async function quitAll(...clients: RedisClient[]): Promise<void> {
  await Promise.all(
    clients.map(async (client) => {
      if (client.status !== 'ready') return client.disconnect();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, QUIT_TIMEOUT_MS)));
      try {
        await Promise.race([client.quit(), timeout]);
      } catch {
        // The connection went away during QUIT: nothing left to leave cleanly.
      } finally {
        clearTimeout(timer);
        client.disconnect();
      }
    }),
  );
}
