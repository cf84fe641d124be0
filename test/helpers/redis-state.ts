// Reading Switchboard's own state in Redis, for tests that check what a node
// left behind (key names: src/presence/redis-presence.ts, node-lease.ts).
import type { TestContext } from 'node:test';
import Redis from 'ioredis';

/** A plain client on `url`, disconnected in teardown. */
export function inspector(t: TestContext, url: string): Redis {
  const client = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 1 });
  client.on('error', () => undefined);
  t.after(() => client.disconnect());
  return client;
}

export async function scanKeys(redis: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys;
}

/** The node ids of every lease in Redis, held or waiting to be reaped (a lease id is "<node>#<epoch>"), sorted. */
export async function leaseNodes(redis: Redis, prefix: string): Promise<string[]> {
  const [held, reaping] = await Promise.all([redis.zrange(`${prefix}{leases}nodes`, 0, -1), redis.zrange(`${prefix}{leases}reaping`, 0, -1)]);
  return [...held, ...reaping].map((lease) => lease.slice(0, lease.lastIndexOf('#'))).sort();
}
