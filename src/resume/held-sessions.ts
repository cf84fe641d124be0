// The sessions a node holds — live or resuming on it — hung on its lease
// (presence/lease-keeper.ts): `{n:<lease>}resume` names them, so that the
// survivor that reaps a dead node's lease releases each for resume (fenced by
// the lease id the session records as its holder). A node whose lease lapsed
// while it lived reclaims them all when it renews (resume-store.ts, Reclaim),
// before it registers its connections again, and hands what was kept for them
// to the listener. Split from redis-resume-store.ts, which makes the steps.
import type { RedisClient } from '../bus/redis-clients';
import type { Logger } from '../log/logger';
import type { LeaseHolder, LeaseKeeper } from '../presence/lease-keeper';
import { NodeLease } from '../presence/node-lease';
import type { Claim, ReclaimListener, ReclaimResult } from './resume-store';

/** The store's steps a hold needs: a reclaim of its own session, and the release of a dead node's. */
export interface HeldSteps {
  reclaim(claim: Claim, resuming: boolean): Promise<ReclaimResult>;
  release(session: string, holder: string): Promise<boolean>;
}

export interface HeldSessionsOptions {
  redis: RedisClient;
  prefix: string;
  node: string;
  /** Absent: nothing hangs on a lease (contract tests); the holder is the node id. */
  lease: LeaseKeeper | undefined;
  logger: Logger | undefined;
  steps: HeldSteps;
}

/** A session this node holds: its claim once the step claiming it answered, and whether that claim's resume has not reached `back` yet. */
export interface Held {
  readonly session: string;
  claim: Claim | undefined;
  resuming: boolean;
  /** Being sent away or ended by its node. */
  leaving: boolean;
}

export class HeldSessions implements LeaseHolder {
  readonly name = 'resume';
  private readonly redis: RedisClient;
  private readonly prefix: string;
  private readonly node: string;
  private readonly lease: LeaseKeeper | undefined;
  private readonly logger: Logger | undefined;
  private readonly steps: HeldSteps;
  /** The sessions this node holds (with their claim once the step that claims them answered), and whether Redis may lack some of them under the current lease. */
  private readonly held = new Map<string, Held>();
  private heldDirty = false;
  /** Held sessions to reclaim since the lease was lost. */
  private readonly toReclaim = new Set<string>();
  private reclaimed: ReclaimListener | undefined;

  constructor(options: HeldSessionsOptions) {
    this.redis = options.redis;
    this.prefix = options.prefix;
    this.node = options.node;
    this.lease = options.lease;
    this.logger = options.logger;
    this.steps = options.steps;
  }

  async start(): Promise<void> {
    await this.lease?.start(this);
  }

  onReclaimed(listener: ReclaimListener): void {
    this.reclaimed = listener;
  }

  /**
   * What a session records as its holder: the node's lease id when it has one (so that a resume
   * finding the holder dead can tell, and release it), else the node id.
   */
  holder(): string {
    return this.lease?.id ?? this.node;
  }

  async holderIsDead(holder: string | undefined): Promise<boolean> {
    if (this.lease === undefined || holder === undefined || !holder.includes('#')) return false;
    const [live] = await this.lease.live([holder]);
    return live === false;
  }

  private heldKey(lease: string): string {
    return `${this.prefix}{n:${lease}}resume`;
  }

  /**
   * Hangs a session this node now holds on the lease. Sent before the step that claims it and not
   * waited for: on one server the connection keeps the order (a reaper always finds it); a failed
   * write is made again by the next heartbeat (`sync`).
   */
  hold(session: string): Held {
    const held: Held = { session, claim: undefined, resuming: false, leaving: false };
    if (this.lease === undefined) return held;
    this.held.set(session, held);
    this.redis.sadd(this.heldKey(this.lease.id), session).catch(() => void (this.heldDirty = true));
    return held;
  }

  /** The hold of `claim`, if this node still has it. */
  heldBy(claim: Claim): Held | undefined {
    const held = this.held.get(claim.session);
    return held?.claim?.epoch === claim.epoch ? held : undefined;
  }

  /**
   * The session is away or ended: the lease no longer answers for it. Only that hold goes: a
   * resume of the same session on this node may have replaced it while this step was on its way.
   */
  unhold(held: Held | undefined): void {
    if (held === undefined || this.held.get(held.session) !== held) return;
    this.held.delete(held.session);
    this.toReclaim.delete(held.session);
    void this.redis.srem(this.heldKey(this.lease!.id), held.session).catch(() => undefined);
  }

  /** Its node sends the session away or ends it: no reclaim from now on. */
  leaving(claim: Claim): Held | undefined {
    const held = this.heldBy(claim);
    if (held !== undefined) held.leaving = true;
    return held;
  }

  /** Reclaims every held session before the node registers its connections again (lease-keeper.ts). */
  leaseLost(): Promise<void> {
    this.heldDirty = true;
    for (const session of this.held.keys()) this.toReclaim.add(session);
    return this.reclaimHeld();
  }

  /** Reclaims what `toReclaim` names; a session whose claiming step has not answered yet waits for the next heartbeat. */
  private async reclaimHeld(): Promise<void> {
    // Not one going away or ending: its step would find it released, and a reclaim after that step
    // would make it live with nobody to serve it. (A reclaim sent before that step goes first.)
    const sessions = [...this.toReclaim].flatMap((session) => {
      const held = this.held.get(session);
      return held?.claim === undefined || held.leaving ? [] : [{ held, claim: held.claim }];
    });
    if (sessions.length === 0) return;
    const results = await Promise.allSettled(
      sessions.map(async ({ held, claim }) => {
        const result = await this.steps.reclaim(claim, held.resuming);
        this.toReclaim.delete(claim.session);
        if (!result.reclaimed) this.unhold(held);
        this.reclaimed?.(claim.session, result);
      }),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    this.logger?.warn({ sessions: sessions.length }, 'the node lease lapsed; reclaimed the sessions it holds');
  }

  unreachable(): void {
    this.heldDirty = true;
  }

  async sync(): Promise<void> {
    if (this.heldDirty && this.lease !== undefined) {
      this.heldDirty = false;
      try {
        if (this.held.size > 0) await this.redis.sadd(this.heldKey(this.lease.id), ...this.held.keys());
      } catch (error) {
        this.heldDirty = true;
        throw error;
      }
    }
    await this.reclaimHeld();
  }

  async reap(lease: string): Promise<void> {
    const key = this.heldKey(lease);
    const node = NodeLease.nodeOf(lease);
    const sessions = await this.redis.smembers(key);
    // Fenced by the lease the sessions were claimed under: one claimed again since is spared.
    for (const session of sessions) await this.steps.release(session, lease);
    await this.redis.del(key);
    if (sessions.length > 0) this.logger?.warn({ deadNode: node, sessions: sessions.length }, 'released the sessions of a dead node for resume');
  }

  /** Leaves the lease; sessions still held (none after a drain) are left to it, for a survivor to release. */
  async close(): Promise<void> {
    const lease = this.lease;
    if (lease === undefined) return;
    await lease.leave(this, async () => {
      if (this.held.size > 0) return false;
      await this.redis.del(this.heldKey(lease.id));
      return true;
    });
  }
}
