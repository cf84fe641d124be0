// The node's one lease (node-lease.ts), kept for every store that hangs
// entries on it: presence and the tunnel registry share one heartbeat and one
// lease id in Redis, so a node is alive or dead for all of them at once.
//
//   every heartbeat ─► renew ──failed──► holders: unreachable()
//                        │ lost ───────► holders: leaseLost() (write everything again under the new id;
//                        │               awaited, so that a holder takes back what peers released
//                        │               before any holder makes the node reachable again)
//                        ▼
//                   holders: sync()      deferred writes and removals, one holder after the other
//                        │ all synced
//                        ▼
//                   claim expired leases ─► holders: reap(lease) ─► lease marked reaped
//
// Reaping waits until every holder has synced: after a lost lease the node's
// old lease is claimable at once, and reaping it before its entries are
// written again under the new one would withdraw them for a moment (users
// reported offline, then online again). A lease is marked reaped only once
// every holder removed what it held there, so reaping stops as soon as one
// holder has left (shutdown): its part of a dead lease would stay for good.
//
// Standing: a node cannot know at once that its lease lapsed (a Redis failover
// or a stall long enough), and a peer may then have reaped it: released its
// sessions, so that messages for its users are kept instead of delivered. From
// the moment its lease could have lapsed — most of a lease since the last
// renewal it sent and saw confirmed — the node's standing is in question
// (`inQuestion`), until a heartbeat renews the lease or, having found it lost,
// every holder has taken back what it held (`settled`). Sessions hold what
// reaches them meanwhile, so that what a reclaim hands back comes first.
// Not while the connection to Redis is down: nothing can be kept for this
// node's sessions that it could deliver ahead of (peers' messages cannot reach
// it either), and local delivery must go on through an outage. A heartbeat runs
// as soon as the connection is ready again, to keep the question short, and a
// hold lasts at most a lease (`settled` resolves then regardless): a node that
// cannot settle delivers late rather than never.
//
// Shutdown: each holder leaves with a last cleanup that says whether nothing
// of its own is left under the lease. When the last one has left, the lease
// is released if none left anything; otherwise it is left to expire, and a
// survivor reaps what remains.
import type { RedisClient } from '../bus/redis-clients';
import type { Logger } from '../log/logger';
import { NodeLease } from './node-lease';

/** The lease is this part of PRESENCE_TTL_MS, renewed every HEARTBEAT_FRACTION of it: expiry plus one reaper pass fit in the TTL. */
const LEASE_FRACTION = 2 / 3;
const HEARTBEAT_FRACTION = 1 / 4;
/** Leases claimed per reaper pass. */
const REAP_BATCH = 16;
/** The standing is in question from this part of a lease after the last confirmed renewal was sent (the rest is margin for clocks). */
const QUESTION_FRACTION = 0.9;

/** Whether a node's hold on what it holds in Redis is in question (see the top). */
export interface Standing {
  readonly inQuestion: boolean;
  /** Resolves once the standing is known again (at once when it is not in question). */
  settled(): Promise<void>;
}

/** A store whose entries in Redis hang on the node's lease. */
export interface LeaseHolder {
  /** Names the holder in logs. */
  readonly name: string;
  /**
   * The lease was lost: `LeaseKeeper.id` is a new one, and everything the holder asserts must be
   * written again under it. Every holder's answer is awaited before any holder syncs.
   */
  leaseLost(): void | Promise<void>;
  /** A heartbeat could not reach Redis: what the holder announced meanwhile may have been lost. */
  unreachable(): void;
  /** After each renewal: writes what Redis has not got, removes what a failed removal left. Rejects when some of it stays undone. */
  sync(): Promise<void>;
  /** Removes the holder's entries held under `lease`, which expired and which this node claimed (fenced: nothing written again under a newer lease). */
  reap(lease: string): Promise<void>;
}

export interface LeaseKeeperOptions {
  redis: RedisClient;
  prefix: string;
  nodeId: string;
  /** PRESENCE_TTL_MS: how long a dead node's entries may outlive it. */
  ttlMs: number;
  logger: Logger;
}

export class LeaseKeeper implements Standing {
  private readonly lease: NodeLease;
  private readonly redis: RedisClient;
  private readonly heartbeatMs: number;
  private readonly leaseMs: number;
  private readonly questionAfterMs: number;
  /**
   * When the standing comes into question (monotonic clock), unless a renewal confirms it before.
   * A clock read rather than a timer: after a stall, what arrived meanwhile is read before any
   * timer runs.
   */
  private questionAt = Number.POSITIVE_INFINITY;
  private whenSettled: { promise: Promise<void>; resolve: () => void } | undefined;
  private readonly logger: Logger;
  private status: 'idle' | 'live' | 'closed' = 'idle';
  private creating: Promise<void> | undefined;
  /** The holders in the heartbeat. */
  private readonly holders = new Set<LeaseHolder>();
  /** Holders whose cleanup is running. */
  private leaving = 0;
  /** Some holder has left: no lease is reaped any more (see the top). */
  private departed = false;
  /** Some holder left entries under the lease: it must expire rather than go. */
  private leftBehind = false;
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> | undefined;

  constructor(options: LeaseKeeperOptions) {
    this.logger = options.logger;
    this.heartbeatMs = Math.max(100, Math.round(options.ttlMs * HEARTBEAT_FRACTION));
    this.leaseMs = Math.round(options.ttlMs * LEASE_FRACTION);
    this.redis = options.redis;
    this.lease = new NodeLease(options.redis, options.prefix, options.nodeId, this.leaseMs);
    this.questionAfterMs = Math.round(this.leaseMs * QUESTION_FRACTION);
    options.redis.on('ready', () => void (this.status === 'live' && this.holders.size > 0 && this.heartbeat()));
  }

  get inQuestion(): boolean {
    return performance.now() >= this.questionAt && this.redis.status === 'ready';
  }

  settled(): Promise<void> {
    if (!this.inQuestion) return Promise.resolve();
    if (this.whenSettled === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      // At most a lease: see the top.
      const timer = setTimeout(() => this.settle(), this.leaseMs).unref();
      const settle = () => {
        clearTimeout(timer);
        resolve();
      };
      this.whenSettled = { promise, resolve: settle };
    }
    return this.whenSettled.promise;
  }

  /** The lease is confirmed by a renewal sent at `sentAt`: in question again a lease from then, unless renewed. */
  private confirmed(sentAt: number): void {
    this.questionAt = sentAt + this.questionAfterMs;
    this.settle();
  }

  private settle(): void {
    this.whenSettled?.resolve();
    this.whenSettled = undefined;
  }

  /** The current lease id, which entries are written under; changes when the lease is lost. */
  get id(): string {
    return this.lease.id;
  }

  /**
   * The connection to Redis has been ready for a whole heartbeat interval: every peer that
   * reconnected with this node has renewed by now (each heartbeats as soon as it is ready), so
   * what Redis says of them is theirs again, not what an outage left.
   */
  get upForAHeartbeat(): boolean {
    return this.lease.connectedForMs() >= this.heartbeatMs;
  }

  /** Whether each lease is live, by Redis's clock. */
  live(leases: readonly string[]): Promise<boolean[]> {
    return this.lease.live(leases);
  }

  /** Adds `holder` to the heartbeat; the first one creates the lease. Resolves once entries may be written under `id`. */
  async start(holder: LeaseHolder): Promise<void> {
    await (this.creating ??= this.create());
    // Every holder may have left while the lease was being created.
    if (this.status !== 'live') throw new Error('the node lease was released');
    this.holders.add(holder);
  }

  private async create(): Promise<void> {
    try {
      await this.lease.create();
    } catch (error) {
      this.creating = undefined; // the next start tries again
      throw error;
    }
    this.status = 'live';
    this.confirmed(performance.now());
    this.timer = setInterval(() => void this.heartbeat(), this.heartbeatMs);
    this.timer.unref();
  }

  /**
   * `holder` leaves the heartbeat. Once a heartbeat running for it has finished, `cleanup` makes its
   * last writes and says whether nothing of the holder's is left under the lease. The last holder to
   * leave stops the heartbeat and releases the lease, unless a holder left entries under it.
   */
  async leave(holder: LeaseHolder, cleanup: () => Promise<boolean>): Promise<void> {
    if (!this.holders.delete(holder)) return;
    this.departed = true;
    this.leaving++;
    if (this.holders.size === 0) clearInterval(this.timer);
    await this.beating;
    let clean = false;
    try {
      clean = await cleanup();
    } catch (error) {
      this.logger.warn({ err: error, holder: holder.name }, 'leaving the lease failed');
    }
    if (!clean) this.leftBehind = true;
    if (--this.leaving > 0 || this.holders.size > 0) return;
    this.status = 'closed';
    // Nothing is held for a standing nobody confirms any more.
    this.questionAt = Number.POSITIVE_INFINITY;
    this.settle();
    if (this.leftBehind) return;
    try {
      await this.lease.release();
    } catch (error) {
      this.logger.warn({ err: error }, 'could not leave Redis cleanly; the lease will expire and a peer reaps what is left');
    }
  }

  /** Runs one heartbeat at a time; a heartbeat due while one runs is skipped. */
  private heartbeat(): Promise<void> {
    return (this.beating ??= this.beat().finally(() => (this.beating = undefined)));
  }

  private async beat(): Promise<void> {
    const holders = [...this.holders];
    const sentAt = performance.now();
    try {
      if ((await this.lease.renew()) || (await this.leaseLost(holders))) this.confirmed(sentAt);
    } catch (error) {
      return this.unreachable(holders, error);
    }
    let synced = true;
    for (const holder of holders) {
      try {
        await holder.sync();
      } catch (error) {
        synced = false;
        this.logger.warn({ err: error, holder: holder.name }, 'deferred writes failed; the next heartbeat goes on');
      }
    }
    if (!synced || this.departed) return;
    try {
      await this.reap(holders);
    } catch (error) {
      this.unreachable(holders, error);
    }
  }

  /** True when every holder took over; one that fails is left to its own `sync`, which runs next (and the standing stays in question). */
  private async leaseLost(holders: readonly LeaseHolder[]): Promise<boolean> {
    const results = await Promise.allSettled(holders.map(async (holder) => holder.leaseLost()));
    results.forEach((result, i) => {
      if (result.status === 'rejected') this.logger.warn({ err: result.reason, holder: holders[i]!.name }, 'taking over a lost lease failed; the next heartbeat goes on');
    });
    return results.every((result) => result.status === 'fulfilled');
  }

  /** Reaps the expired leases this node claimed; a lease whose reaping fails is claimed again once its claim expires. */
  private async reap(holders: readonly LeaseHolder[]): Promise<void> {
    for (const lease of await this.lease.claimExpired(REAP_BATCH)) {
      this.logger.warn({ deadNode: NodeLease.nodeOf(lease) }, 'reaping a node whose lease expired');
      for (const holder of holders) await holder.reap(lease);
      await this.lease.reaped(lease);
    }
  }

  private unreachable(holders: readonly LeaseHolder[], error: unknown): void {
    for (const holder of holders) holder.unreachable();
    this.logger.warn({ err: error }, 'lease heartbeat failed');
  }
}
