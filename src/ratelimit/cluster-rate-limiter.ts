// The per-user rate limit counted across all nodes, without a Redis round
// trip per frame.
//
//   frame ──► local window for the user: known global count + our unreported frames
//               │ under the limit: decided at once, synchronously
//               └ every FLUSH_MS, or as soon as a user has `threshold` unreported
//                 frames: rate-limiter-flexible's RateLimiterRedis.penalty(user, n)
//                 adds them to the shared Redis counter and returns the global
//                 total, which the local window adopts.
//
// Accuracy: a node runs ahead of Redis by at most `threshold` frames per user
// (10 % of the budget), and by one frame once the user nears the limit; frames
// past that wait for the reconciliation in flight. The global budget holds
// within ±20 % with several nodes flooding at once (cluster-rate-limit test).
// A Redis error is never "limited": while the store fails, an in-memory limiter decides (rate-limiter-flexible's
// insurance pattern) and the store is retried every RETRY_MS.
//
// Frames that wait are held in memory, so the wait is bounded twice over:
// - per user, by the budget left: a frame that finds as many frames waiting as the window has
//   budget left cannot be allowed in this window whatever Redis answers (the count only grows),
//   so it is refused at once, as the memory limiter would refuse it. A flooding client thus
//   holds at most RATE_LIMIT_POINTS frames here, however fast it sends;
// - per node, by MAX_WAITING_FRAMES: past it Redis is not keeping up (a stall holds every
//   active user's frames for up to the command timeout), and frames are decided from this node's
//   own count, like the in-memory limiter during an outage, because a slow store must not limit
//   users (this node may then run ahead of the global budget by what other nodes allowed meanwhile).
// Both are counted in signaling_rate_limit_queue_full_total{bound="user"|"node"}.
import { RateLimiterRedis } from 'rate-limiter-flexible';
import type { RedisClient } from '../bus/redis-clients';
import type { Logger } from '../log/logger';
import type { Metrics } from '../metrics/metrics';
import { ALLOWED, MemoryRateLimiter, type RateDecision, type UserRateLimiter } from './rate-limiter';

/**
 * How often frames below the threshold are reported. Accuracy does not depend on it (the
 * threshold bounds how far a node runs ahead); cost does: each report is a Redis script call per
 * active user. At 20 ms, 1,000 active senders cost the node ~0.7 of a core (bench W2, 1000 pairs).
 */
const FLUSH_MS = 500;
const RETRY_MS = 1000;
/**
 * Frames waiting for Redis on one node, all users together. A waiting frame costs a few hundred
 * bytes (its callback here and the session's promise), so this is a few MB; a healthy node waits
 * for one round trip per near-limit user and stays far below it.
 */
export const MAX_WAITING_FRAMES = 10_000;

interface UserWindow {
  /** Frames counted in this window: the last global total from Redis plus ours since. */
  consumed: number;
  /** Ours not yet reported to Redis. */
  pending: number;
  resetAt: number;
  flushing: boolean;
  /** Frames waiting for a reconciliation before they can be decided, in arrival order. */
  waiting: ((decision: RateDecision) => void)[];
}

export interface ClusterRateLimiterOptions {
  redis: RedisClient;
  prefix: string;
  points: number;
  durationS: number;
  logger: Logger;
  /** Counts frames decided locally because a wait was full (optional: tests build limiters without a node). */
  metrics?: Pick<Metrics, 'rateLimitQueueFull'>;
  /** The per-node bound on waiting frames (default MAX_WAITING_FRAMES). */
  maxWaiting?: number;
}

export class ClusterRateLimiter implements UserRateLimiter {
  private readonly store: RateLimiterRedis;
  private readonly insurance: MemoryRateLimiter;
  private readonly windows = new Map<string, UserWindow>();
  private readonly points: number;
  private readonly durationMs: number;
  private readonly threshold: number;
  private readonly logger: Logger;
  private readonly metrics: Pick<Metrics, 'rateLimitQueueFull'> | undefined;
  private readonly maxWaiting: number;
  /** Frames waiting in every user's window together. */
  private waitingTotal = 0;
  private storeDownUntil = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: ClusterRateLimiterOptions) {
    this.points = options.points;
    this.durationMs = options.durationS * 1000;
    this.threshold = Math.max(1, Math.floor(options.points / 10));
    this.logger = options.logger;
    this.metrics = options.metrics;
    this.maxWaiting = options.maxWaiting ?? MAX_WAITING_FRAMES;
    this.store = new RateLimiterRedis({
      storeClient: options.redis,
      keyPrefix: `${options.prefix}rl`,
      points: options.points,
      duration: options.durationS,
    });
    this.insurance = new MemoryRateLimiter({ points: options.points, durationS: options.durationS });
  }

  consume(user: string): RateDecision | Promise<RateDecision> {
    const now = Date.now();
    const window = this.windowFor(user, now);
    if (now < this.storeDownUntil) {
      window.pending++;
      this.schedule();
      return this.insurance.consume(user);
    }
    // A node may run ahead of Redis by `threshold` frames per user, no more: past that, frames
    // wait for the reconciliation in flight (and keep their order behind earlier waiters).
    if (window.waiting.length === 0 && !(window.flushing && window.pending >= this.aheadLimit(window))) return this.decide(user, window, now);
    if (window.waiting.length >= this.points - window.consumed) {
      this.metrics?.rateLimitQueueFull.inc({ bound: 'user' });
      return { allowed: false, retryAfterMs: Math.max(1, window.resetAt - now) };
    }
    if (this.waitingTotal >= this.maxWaiting) {
      this.metrics?.rateLimitQueueFull.inc({ bound: 'node' });
      return this.decide(user, window, now);
    }
    this.waitingTotal++;
    return new Promise((resolve) => window.waiting.push(resolve));
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.insurance.close();
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flushAll();
    }, FLUSH_MS);
    this.timer.unref();
  }

  private flushAll(): void {
    const now = Date.now();
    if (now < this.storeDownUntil) return this.schedule();
    for (const [user, window] of this.windows) {
      if (window.pending > 0 && !window.flushing) this.flushUser(user, window);
      else if (window.pending === 0 && now >= window.resetAt) this.windows.delete(user);
    }
  }

  private windowFor(user: string, now: number): UserWindow {
    const current = this.windows.get(user);
    if (current !== undefined && now < current.resetAt) return current;
    const fresh: UserWindow = { consumed: 0, pending: 0, resetAt: now + this.durationMs, flushing: false, waiting: current?.waiting ?? [] };
    this.windows.set(user, fresh);
    if (current !== undefined) {
      // Frames that waited on the old window are decided in the new one, before anything newer.
      current.waiting = [];
      this.release(user, fresh);
    }
    return fresh;
  }

  /**
   * How far this node may run ahead of Redis: `threshold` frames normally, one frame once the
   * user is within `threshold` of the budget, so that only a flooding user near the limit pays a
   * round trip per frame, and the last frames of a budget are never handed out twice.
   */
  private aheadLimit(window: UserWindow): number {
    return window.consumed + this.threshold >= this.points ? 1 : this.threshold;
  }

  /** Counts one frame if the budget allows; starts a reconciliation once `threshold` frames are unreported. */
  private decide(user: string, window: UserWindow, now: number): RateDecision {
    if (window.consumed >= this.points) return { allowed: false, retryAfterMs: Math.max(1, window.resetAt - now) };
    window.consumed++;
    window.pending++;
    if (window.pending >= this.aheadLimit(window) && !window.flushing) this.flushUser(user, window);
    else this.schedule();
    return ALLOWED;
  }

  /** Decides waiting frames in order, until the budget is spent or another reconciliation must finish first. */
  private release(user: string, window: UserWindow): void {
    const now = Date.now();
    while (window.waiting.length > 0 && !(window.flushing && window.pending >= this.aheadLimit(window))) {
      this.waitingTotal--;
      window.waiting.shift()?.(this.decide(user, window, now));
    }
  }

  private flushUser(user: string, window: UserWindow): void {
    const reported = window.pending;
    window.pending = 0;
    window.flushing = true;
    this.store.penalty(user, reported).then(
      (result) => {
        window.flushing = false;
        // The global total includes what we just reported; add what arrived meanwhile.
        window.consumed = Math.max(window.consumed, result.consumedPoints + window.pending);
        window.resetAt = Date.now() + result.msBeforeNext;
        this.release(user, window);
        if (window.pending > 0) this.schedule();
      },
      (error: unknown) => {
        window.flushing = false;
        window.pending += reported;
        if (Date.now() >= this.storeDownUntil) {
          this.logger.warn({ err: error }, 'rate-limit store unavailable; limiting in memory meanwhile');
          // The in-memory limiter takes over with what this window already used.
          this.insurance.charge(user, window.consumed);
        }
        this.storeDownUntil = Date.now() + RETRY_MS;
        this.waitingTotal -= window.waiting.length;
        for (const waiter of window.waiting.splice(0)) waiter(this.insurance.consume(user));
        this.schedule();
      },
    );
  }
}
