// One "node" of the stores that hang on a node lease, without a server: its
// own Redis connections, its LeaseKeeper, a started tunnel registry and (when
// asked) presence on the same lease. Several on one redis-server are a
// cluster for the registry's and the lease's tests; closed in teardown.
import type { TestContext } from 'node:test';
import { connectRedis, type RedisClients } from '../../src/bus/redis-clients';
import { loadConfig } from '../../src/config/load';
import { createLogger } from '../../src/log/logger';
import { LeaseKeeper } from '../../src/presence/lease-keeper';
import { RedisPresence } from '../../src/presence/redis-presence';
import { RedisRegistry } from '../../src/tunnel/redis-registry';
import { TEST_SECRET } from './node';
import type { RedisAt } from './redis-topologies';

export type { RedisAt };

export interface LeaseNode {
  nodeId: string;
  clients: RedisClients;
  lease: LeaseKeeper;
  registry: RedisRegistry;
  presence: RedisPresence;
}

export interface LeaseNodeOptions {
  /** PRESENCE_TTL_MS; 600 renews every 150 ms and lets a cut-off node's lease expire after 400 ms. */
  ttlMs?: number;
  /** Starts presence on the lease too (before the registry, as main.ts does). */
  presence?: boolean;
  /** Starts nothing: no heartbeat, so the node reaps no one (its registry can still read routes). */
  idle?: boolean;
}

/** Where a node's Redis is: one server (a proxy's URL, to cut it off) or a Redis Cluster. */

/** A node with id `nodeId` on the Redis `at`, its keys under `prefix`. */
export async function startLeaseNode(t: TestContext, at: RedisAt, prefix: string, nodeId: string, options: LeaseNodeOptions = {}): Promise<LeaseNode> {
  const logger = createLogger('silent');
  const clients = await connectRedis(loadConfig({ JWT_SECRET: TEST_SECRET, NODE_ID: nodeId, ...at }), logger);
  t.after(() => clients.close());
  const lease = new LeaseKeeper({ redis: clients.commands, prefix, nodeId, ttlMs: options.ttlMs ?? 15000, logger });
  const presence = new RedisPresence({ redis: clients.commands, prefix, lease, logger });
  const registry = new RedisRegistry({ redis: clients.commands, prefix, lease, logger });
  if (options.idle === true) return { nodeId, clients, lease, registry, presence };
  if (options.presence === true) {
    await presence.start();
    t.after(() => presence.close());
  }
  await registry.start();
  t.after(() => registry.close());
  return { nodeId, clients, lease, registry, presence };
}
