// A node's lease in Redis: what its entries in Redis hang on.
//
//   {leases}nodes     ZSET  lease id → expiry      (Redis ms, from TIME)
//   {leases}reaping   ZSET  lease id → claim deadline
//
// One lease per node, whatever hangs on it (presence, the tunnel registry):
// lease-keeper.ts renews it for all of them.
//
// A lease id is "<node>#<epoch>". While the node lives it renews its lease
// every heartbeat; the lease is judged by Redis's clock alone (TIME inside the
// scripts), so a node whose clock runs behind or ahead is neither reaped over
// and over nor kept alive by it.
//
// When a renewal finds the lease gone or expired (Redis restarted empty, or the
// node was stalled or cut off long enough to be reaped), the node takes a new
// epoch: its entries are written again under the new id, and the old id goes
// to the reapers. Reapers remove an entry only if it still names the lease they
// reap, so a reaper that is slow can never remove what the live node wrote
// again under its new id.
//
// A survivor claims expired leases (a claim moves the lease to `reaping` with
// a deadline; a reaper that dies mid-way leaves a claim that expires, and the
// next reaper takes it over), removes what they held and drops the claim.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RedisClient } from '../bus/redis-clients';
import { randomId } from '../util/random-id';

interface LeaseScripts {
  sbRenewLease(leases: string, reaping: string, lease: string, ms: number, mode: string, previous: string): Promise<number>;
  sbClaimExpired(leases: string, reaping: string, self: string, claimMs: number, limit: number): Promise<string[]>;
  sbLiveLeases(leases: string, ...ids: string[]): Promise<number[]>;
}

const lua = (name: string) => readFileSync(join(__dirname, 'lua', `${name}.lua`), 'utf8');

export class NodeLease {
  private readonly redis: RedisClient & LeaseScripts;
  private readonly leasesKey: string;
  private readonly reapingKey: string;
  /** The current lease id; changes when a lease is lost. */
  id: string;
  /** When the Redis connection last became ready (monotonic clock). */
  private connectedSince = performance.now();

  constructor(
    redis: RedisClient,
    prefix: string,
    private readonly nodeId: string,
    private readonly leaseMs: number,
  ) {
    redis.defineCommand('sbRenewLease', { numberOfKeys: 2, lua: lua('renew-lease') });
    redis.defineCommand('sbClaimExpired', { numberOfKeys: 2, lua: lua('claim-expired') });
    redis.defineCommand('sbLiveLeases', { numberOfKeys: 1, lua: lua('live-leases') });
    this.redis = redis as RedisClient & LeaseScripts;
    this.leasesKey = `${prefix}{leases}nodes`;
    this.reapingKey = `${prefix}{leases}reaping`;
    this.id = NodeLease.idFor(nodeId);
    redis.on('ready', () => (this.connectedSince = performance.now()));
  }

  private static idFor(nodeId: string): string {
    return `${nodeId}#${randomId(6)}`;
  }

  /** The node id of a lease id. */
  static nodeOf(lease: string): string {
    const hash = lease.lastIndexOf('#');
    return hash === -1 ? lease : lease.slice(0, hash);
  }

  /** Creates the first lease. */
  async create(): Promise<void> {
    await this.redis.sbRenewLease(this.leasesKey, this.reapingKey, this.id, this.leaseMs, 'create', '');
  }

  /** Renews the lease; false when it was lost, and the node now holds a new lease id (its entries must be written again). */
  async renew(): Promise<boolean> {
    if ((await this.redis.sbRenewLease(this.leasesKey, this.reapingKey, this.id, this.leaseMs, 'renew', '')) === 1) return true;
    const previous = this.id;
    const next = NodeLease.idFor(this.nodeId);
    await this.redis.sbRenewLease(this.leasesKey, this.reapingKey, next, this.leaseMs, 'create', previous);
    this.id = next;
    return false;
  }

  /**
   * Expired leases of other nodes (or this node's own old ones), claimed for reaping. Only once
   * this node's connection has been up for a whole lease: after an outage every node needs a
   * moment to renew before its peers may judge it dead.
   */
  async claimExpired(limit: number): Promise<string[]> {
    if (this.connectedForMs() < this.leaseMs) return [];
    return this.redis.sbClaimExpired(this.leasesKey, this.reapingKey, this.id, this.leaseMs, limit);
  }

  /** How long the Redis connection has been ready (since it last became so). */
  connectedForMs(): number {
    return performance.now() - this.connectedSince;
  }

  /** Whether each lease is live (held and unexpired), by Redis's clock. */
  async live(leases: readonly string[]): Promise<boolean[]> {
    if (leases.length === 0) return [];
    return (await this.redis.sbLiveLeases(this.leasesKey, ...leases)).map((flag) => flag === 1);
  }

  /** A reaped lease is done with. */
  async reaped(lease: string): Promise<void> {
    await this.redis.zrem(this.reapingKey, lease);
  }

  /** Clean exit: the lease goes at once (only once the node's entries are gone). */
  async release(): Promise<void> {
    await this.redis.zrem(this.leasesKey, this.id);
  }
}
