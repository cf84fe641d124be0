// The Redis layout of the tunnel registry: one route at a time, held under
// the node's lease (presence/node-lease.ts) like presence's entries
// (presence/leased-entries.ts). How a route is written and removed lives
// here; when, and for whom, is redis-registry.ts's business.
//
//   {t:<pathId>}routes    HASH sidecar → lease id "<node>#<epoch>"   (the node is the lease's)
//   {n:<lease>}tunnels    SET  "<pathId>/<sidecar>"                  what a lease holds, for reaping
//
// - The lease's index is written before the route (and removed after it), so
//   a reaper always finds every route a dead lease holds.
// - A removal is fenced: it removes the route only if it still hangs on the
//   lease it means (a reaper of an old lease removes nothing written again
//   under a new one).
// - Between the index and the route, the writer is asked whether it still
//   wants the route: a removal issued meanwhile went to Redis first, and
//   nothing may be written after it.
// Keys carry hash tags, so on Redis Cluster each command touches one slot
// (which is why `routes` asks about the leases in a second round trip). A
// path id (PATH_ID_PATTERN) holds no '{', '}' or '/'.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RedisClient } from '../bus/redis-clients';
import { scanSet } from '../presence/batches';

interface Scripts {
  sbRemoveRoute(key: string, sidecar: string, lease: string): Promise<number>;
}

/** A route as Redis holds it: live or not is the lease's to say. */
export interface HeldRoute {
  sidecar: string;
  lease: string;
}

export class LeasedRoutes {
  private readonly redis: RedisClient & Scripts;

  constructor(
    redis: RedisClient,
    private readonly prefix: string,
  ) {
    redis.defineCommand('sbRemoveRoute', { numberOfKeys: 1, lua: readFileSync(join(__dirname, 'lua', 'remove-route.lua'), 'utf8') });
    this.redis = redis as RedisClient & Scripts;
  }

  private routesKey = (pathId: string) => `${this.prefix}{t:${pathId}}routes`;
  private index = (lease: string) => `${this.prefix}{n:${lease}}tunnels`;

  /** Writes a route under `lease`; false when `wanted` said no between the index and the route. */
  async add(lease: string, pathId: string, sidecar: string, wanted: () => boolean): Promise<boolean> {
    await this.redis.sadd(this.index(lease), `${pathId}/${sidecar}`);
    if (!wanted()) return false;
    await this.redis.hset(this.routesKey(pathId), sidecar, lease);
    return true;
  }

  /**
   * Fenced removal of a route held under `lease`, then its index entry — unless `gone` says the
   * route was added again meanwhile: that add's index entry is the same member, and it was written
   * after this removal's HDEL, so the route it writes must stay findable.
   */
  async remove(lease: string, pathId: string, sidecar: string, gone: () => boolean = () => true): Promise<void> {
    await this.redis.sbRemoveRoute(this.routesKey(pathId), sidecar, lease);
    if (gone()) await this.redis.srem(this.index(lease), `${pathId}/${sidecar}`);
  }

  /** Every route of a path, whether its lease is live or not. */
  async held(pathId: string): Promise<HeldRoute[]> {
    return Object.entries(await this.redis.hgetall(this.routesKey(pathId))).map(([sidecar, lease]) => ({ sidecar, lease }));
  }

  /** Visits every route a lease's index names. */
  scan(lease: string, visit: (pathId: string, sidecar: string) => Promise<void>): Promise<void> {
    return scanSet(this.redis, this.index(lease), (entry) => {
      const slash = entry.indexOf('/');
      return visit(entry.slice(0, slash), entry.slice(slash + 1));
    });
  }

  /** How many routes a lease's index still names. */
  indexed(lease: string): Promise<number> {
    return this.redis.scard(this.index(lease));
  }
}
