// Per-user frame rate limit (SPEC §3.7): RATE_LIMIT_POINTS frames per
// RATE_LIMIT_DURATION_S, counted across all the user's devices (and, with a
// cluster store, all nodes). A store error is never "limited": the memory
// limiter decides instead (rate-limiter-flexible's insurance pattern).
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';

export type RateDecision = { allowed: true } | { allowed: false; retryAfterMs: number };

export interface UserRateLimiter {
  /**
   * Counts one frame for `user`. Resolves in call order (callers rely on it to
   * keep a connection's frames in order) and never rejects.
   */
  consume(user: string): Promise<RateDecision>;
}

const ALLOWED: RateDecision = Object.freeze({ allowed: true });

/** Turns rate-limiter-flexible's resolve/reject protocol into a decision. */
export function toDecision(promise: Promise<unknown>, fallback: (error: unknown) => Promise<RateDecision>): Promise<RateDecision> {
  return promise.then(
    () => ALLOWED,
    (rejection: unknown) =>
      rejection instanceof RateLimiterRes
        ? { allowed: false, retryAfterMs: Math.max(1, Math.ceil(rejection.msBeforeNext)) }
        : fallback(rejection),
  );
}

/** One node's limiter, in memory. */
export class MemoryRateLimiter implements UserRateLimiter {
  private readonly limiter: RateLimiterMemory;

  constructor(options: { points: number; durationS: number }) {
    this.limiter = new RateLimiterMemory({ points: options.points, duration: options.durationS, keyPrefix: 'u' });
  }

  consume(user: string): Promise<RateDecision> {
    // The memory store cannot fail; an unexpected error is allowed through rather than limiting users.
    return toDecision(this.limiter.consume(user), () => Promise.resolve(ALLOWED));
  }

  /** Counts frames already allowed elsewhere (the cluster limiter hands over when Redis fails). */
  charge(user: string, frames: number): void {
    if (frames > 0) void this.limiter.penalty(user, frames);
  }
}
