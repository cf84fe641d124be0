// The tunnel registry in Redis, for a cluster: the routes this node asserts,
// and keeping Redis in step with them. The layout of one route and its
// fencing are in leased-routes.ts; the node's lease, shared with presence, in
// presence/lease-keeper.ts.
//
//   add ────► local route ──► LeasedRoutes.add ──► resolves: every node finds it
//                                   │ failed (Redis down): forgotten, add rejects
//   remove ─► local route gone ──► fenced removal (the lease it was written under)
//                                   │ failed: the next heartbeat removes what no local route asserts
//   lease lost ──► the next heartbeat writes every local route again, under the new lease
//
// This node keeps only the routes it asserts: a removal that fails is not
// queued, the next heartbeat that reaches Redis compares the lease's index
// with the local routes, so the memory an outage costs is bounded by the live
// sidecars however long it lasts. A dead node's routes stop being returned as
// soon as its lease expires by Redis's clock, and its reaper removes them.
//
// Shutdown withdraws this node's routes before the lease may go; when Redis
// does not answer they are left to the lease, which expires.
import type { RedisClient } from '../bus/redis-clients';
import type { Logger } from '../log/logger';
import { writeInBatches } from '../presence/batches';
import type { LeaseHolder, LeaseKeeper } from '../presence/lease-keeper';
import { NodeLease } from '../presence/node-lease';
import { LeasedRoutes } from './leased-routes';
import type { TunnelRegistry, TunnelRoute } from './registry';

export interface RedisRegistryOptions {
  redis: RedisClient;
  prefix: string;
  /** The node's lease, shared with presence: the routes hang on it. */
  lease: LeaseKeeper;
  logger: Logger;
}

/** A route this node asserts, and the lease it was last written under (its removal is fenced by it). */
interface LocalRoute {
  readonly pathId: string;
  readonly sidecar: string;
  lease: string;
}

/** A path id holds no '/'. */
const routeKey = (pathId: string, sidecar: string) => `${pathId}/${sidecar}`;

export class RedisRegistry implements TunnelRegistry, LeaseHolder {
  readonly name = 'tunnel registry';
  private readonly routesIn: LeasedRoutes;
  private readonly lease: LeaseKeeper;
  private readonly logger: Logger;
  private status: 'idle' | 'live' | 'closing' | 'closed' = 'idle';
  private starting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  /** "<pathId>/<sidecar>" → the route this node asserts (set before it is written). */
  private readonly local = new Map<string, LocalRoute>();
  /** Routes Redis has not got since the lease was lost: the next heartbeat writes them. */
  private readonly unsynced = new Set<string>();
  /** A write failed that may have left a route behind, or a removal failed. */
  private staleMayExist = false;

  constructor(options: RedisRegistryOptions) {
    this.routesIn = new LeasedRoutes(options.redis, options.prefix);
    this.lease = options.lease;
    this.logger = options.logger;
  }

  start(): Promise<void> {
    return (this.starting ??= this.begin());
  }

  private async begin(): Promise<void> {
    await this.lease.start(this);
    // Closed while the lease was being created: nothing was written, so it leaves clean.
    if (this.status !== 'idle') return this.lease.leave(this, () => Promise.resolve(true));
    this.status = 'live';
  }

  async add(pathId: string, sidecar: string): Promise<void> {
    if (this.status !== 'live') throw new Error(`the tunnel registry is ${this.status}`);
    const key = routeKey(pathId, sidecar);
    const route: LocalRoute = { pathId, sidecar, lease: this.lease.id };
    this.local.set(key, route);
    try {
      await this.write(key, route);
    } catch (error) {
      // Nothing is kept: the join fails. The write may have landed, so the next heartbeat removes
      // what no local route asserts.
      this.forget(key, route);
      this.staleMayExist = true;
      throw error;
    }
    // Closed meanwhile: the close withdrew the route (or left it to the lease); the join fails.
    if (this.status !== 'live') throw new Error('the tunnel registry closed');
  }

  /**
   * Writes `route` under the current lease (nothing when it is removed meanwhile). A lease lost while
   * the write was in flight may have been reaped before the write landed: the route is then written
   * again under the new lease, and the old write taken back (fenced: it spares the new one).
   */
  private async write(key: string, route: LocalRoute): Promise<void> {
    const lease = (route.lease = this.lease.id);
    const written = await this.routesIn.add(lease, route.pathId, route.sidecar, () => this.local.get(key) === route);
    if (!written || this.lease.id === lease) return;
    try {
      if (this.local.get(key) === route) await this.write(key, route);
    } finally {
      await this.routesIn.remove(lease, route.pathId, route.sidecar);
    }
  }

  async remove(pathId: string, sidecar: string): Promise<void> {
    const key = routeKey(pathId, sidecar);
    const route = this.local.get(key);
    this.local.delete(key);
    this.unsynced.delete(key);
    try {
      // Fenced by the lease the route was written under; one this node does not hold is looked for
      // under the current lease (an add that failed may have landed).
      await this.routesIn.remove(route?.lease ?? this.lease.id, pathId, sidecar, () => !this.local.has(key));
    } catch (error) {
      // Never rejects: the next heartbeat that reaches Redis removes what no local route asserts.
      this.staleMayExist = true;
      this.logger.debug({ err: error, tunnel: pathId }, 'route removal deferred to the next heartbeat');
    }
  }

  async routes(pathId: string): Promise<TunnelRoute[]> {
    const held = await this.routesIn.held(pathId);
    // A dead node's routes are skipped from the moment its lease expires, before a reaper removes them.
    const leases = [...new Set(held.map((route) => route.lease))];
    const flags = await this.lease.live(leases);
    const live = new Set(leases.filter((_, i) => flags[i] === true));
    return held.filter((route) => live.has(route.lease)).map((route) => ({ node: NodeLease.nodeOf(route.lease), sidecar: route.sidecar }));
  }

  private forget(key: string, route: LocalRoute): void {
    if (this.local.get(key) !== route) return;
    this.local.delete(key);
    this.unsynced.delete(key);
  }

  // ── the lease's heartbeat (presence/lease-keeper.ts) ──────────────────────

  /** Redis lost this node's routes (a restart) or a peer reaped them: each is written again under the new lease. */
  leaseLost(): void {
    if (this.local.size > 0) this.logger.warn({ routes: this.local.size }, "this node's lease was lost; registering its tunnel routes again");
    for (const key of this.local.keys()) this.unsynced.add(key);
    // What the old lease's index names is the reapers' now; this lease's index starts empty.
    this.staleMayExist = false;
  }

  /** Nothing to announce: routes are read when a request comes, not pushed. */
  unreachable(): void {}

  /** Writes the routes Redis has not got, then removes what failed writes and removals left. */
  async sync(): Promise<void> {
    await writeInBatches(this.unsynced, (key) => this.syncRoute(key));
    if (!this.staleMayExist) return;
    this.staleMayExist = false;
    try {
      await this.removeStale();
    } catch (error) {
      this.staleMayExist = true;
      throw error;
    }
  }

  private async syncRoute(key: string): Promise<void> {
    const route = this.local.get(key);
    this.unsynced.delete(key);
    if (route === undefined) return;
    try {
      await this.write(key, route);
    } catch (error) {
      if (this.local.get(key) === route) this.unsynced.add(key);
      throw error;
    }
  }

  /** Removes what the current lease's index names and no local route asserts. */
  private removeStale(): Promise<void> {
    const lease = this.lease.id;
    return this.routesIn.scan(lease, async (pathId, sidecar) => {
      const key = routeKey(pathId, sidecar);
      if (!this.local.has(key)) await this.routesIn.remove(lease, pathId, sidecar, () => !this.local.has(key));
    });
  }

  reap(lease: string): Promise<void> {
    return this.routesIn.scan(lease, (pathId, sidecar) => this.routesIn.remove(lease, pathId, sidecar));
  }

  // ── shutdown ──────────────────────────────────────────────────────────────

  /**
   * Withdraws every route of this node (its sidecars go with it) before the lease may go; when Redis
   * does not answer, they are left to the lease, which expires, and a survivor reaps them.
   */
  close(): Promise<void> {
    return (this.closing ??= this.shutdown());
  }

  private async shutdown(): Promise<void> {
    const started = this.status === 'live';
    this.status = 'closing';
    this.local.clear();
    this.unsynced.clear();
    this.staleMayExist = true;
    if (started) await this.lease.leave(this, () => this.withdraw());
    this.status = 'closed';
  }

  /** Whether nothing of this node's is left in the registry. */
  private async withdraw(): Promise<boolean> {
    try {
      await this.sync();
      const indexed = await this.routesIn.indexed(this.lease.id);
      if (indexed === 0) return true;
      this.logger.warn({ indexed }, 'tunnel routes remain in Redis; leaving the lease to expire so that a peer reaps them');
    } catch (error) {
      this.logger.warn({ err: error }, 'could not withdraw the tunnel routes; the lease will expire and a peer reaps them');
    }
    return false;
  }
}
