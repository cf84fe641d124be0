// The per-user rate limit counted across all nodes, without a Redis round
// trip per frame.
//
//   frame ──► local window for the user: known global count + our unreported frames
//               │ under the limit: allowed at once (a resolved promise, so order is kept)
//               └ every FLUSH_MS, or as soon as a user has `threshold` unreported
//                 frames: rate-limiter-flexible's RateLimiterRedis.penalty(user, n)
//                 adds them to the shared Redis counter and returns the global
//                 total, which the local window adopts.
//
// Accuracy: a node can overshoot by the frames it allows between two
// reconciliations, at most `threshold` (10 % of the budget) per node plus one
// in-flight batch, so the global budget holds within about ±20 % with two or
// three nodes flooding at once. A Redis error is never "limited": while the
// store fails, an in-memory limiter decides (rate-limiter-flexible's
// insurance pattern) and the store is retried every RETRY_MS.
import { RateLimiterRedis } from 'rate-limiter-flexible';
import type { RedisClient } from '../bus/redis-clients';
import type { Logger } from '../log/logger';
import { MemoryRateLimiter, type RateDecision, type UserRateLimiter } from './rate-limiter';

const FLUSH_MS = 20;
const RETRY_MS = 1000;
const ALLOWED: Promise<RateDecision> = Promise.resolve({ allowed: true });

interface UserWindow {
  /** Frames counted in this window: the last global total from Redis plus ours since. */
  consumed: number;
  /** Ours not yet reported to Redis. */
  pending: number;
  resetAt: number;
  flushing: boolean;
}

export interface ClusterRateLimiterOptions {
  redis: RedisClient;
  prefix: string;
  points: number;
  durationS: number;
  logger: Logger;
}

export class ClusterRateLimiter implements UserRateLimiter {
  private readonly store: RateLimiterRedis;
  private readonly insurance: MemoryRateLimiter;
  private readonly windows = new Map<string, UserWindow>();
  private readonly points: number;
  private readonly durationMs: number;
  private readonly threshold: number;
  private readonly logger: Logger;
  private storeDownUntil = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: ClusterRateLimiterOptions) {
    this.points = options.points;
    this.durationMs = options.durationS * 1000;
    this.threshold = Math.max(1, Math.floor(options.points / 10));
    this.logger = options.logger;
    this.store = new RateLimiterRedis({
      storeClient: options.redis,
      keyPrefix: `${options.prefix}rl`,
      points: options.points,
      duration: options.durationS,
    });
    this.insurance = new MemoryRateLimiter({ points: options.points, durationS: options.durationS });
  }

  consume(user: string): Promise<RateDecision> {
    const now = Date.now();
    let window = this.windows.get(user);
    if (window === undefined || now >= window.resetAt) {
      const carried = window?.flushing === true ? window.pending : 0;
      window = { consumed: 0, pending: carried, resetAt: now + this.durationMs, flushing: false };
      this.windows.set(user, window);
    }
    if (now < this.storeDownUntil) {
      window.pending++;
      this.schedule();
      return this.insurance.consume(user);
    }
    if (window.consumed >= this.points) return Promise.resolve({ allowed: false, retryAfterMs: Math.max(1, window.resetAt - now) });
    window.consumed++;
    window.pending++;
    if (window.pending >= this.threshold && !window.flushing) this.flushUser(user, window);
    else this.schedule();
    return ALLOWED;
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
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
        if (window.pending > 0) this.schedule();
      },
      (error: unknown) => {
        window.flushing = false;
        window.pending += reported;
        if (Date.now() >= this.storeDownUntil)
          this.logger.warn({ err: error }, 'rate-limit store unavailable; limiting in memory meanwhile');
        this.storeDownUntil = Date.now() + RETRY_MS;
        this.schedule();
      },
    );
  }
}
