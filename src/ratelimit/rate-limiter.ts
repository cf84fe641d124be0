// Per-user frame rate limit (SPEC §3.7): RATE_LIMIT_POINTS frames per
// RATE_LIMIT_DURATION_S, counted across all the user's devices (and, with a
// cluster store, all nodes). A store error is never "limited": the memory
// limiter decides instead (rate-limiter-flexible's insurance pattern).
//
// Decisions are synchronous whenever they can be made in memory, which is
// every frame on one node and nearly every frame in a cluster: a promise per
// frame (rate-limiter-flexible's API is promise-only) and the microtask turn
// it costs measured ~8 % of a one-node relay (bench W1).

export type RateDecision = { allowed: true } | { allowed: false; retryAfterMs: number };

export interface UserRateLimiter {
  /**
   * Counts one frame for `user`: a decision now, or a promise when it must wait for the cluster
   * store. Promises never reject. The budget goes to frames in call order: no frame is allowed
   * ahead of an earlier one that waits, though a frame that cannot be allowed may be refused at
   * once, before earlier ones resolve. Callers keep a connection's frames in order themselves
   * once one of them waits.
   */
  consume(user: string): RateDecision | Promise<RateDecision>;
}

export const ALLOWED: RateDecision = Object.freeze({ allowed: true });

interface Window {
  consumed: number;
  resetAt: number;
}

/**
 * One node's limiter: a fixed window per user, opened by the user's first frame (the same
 * windows as rate-limiter-flexible's RateLimiterMemory), swept once they expire.
 */
export class MemoryRateLimiter implements UserRateLimiter {
  private readonly windows = new Map<string, Window>();
  private readonly points: number;
  private readonly durationMs: number;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(options: { points: number; durationS: number }) {
    this.points = options.points;
    this.durationMs = options.durationS * 1000;
  }

  consume(user: string): RateDecision {
    const now = Date.now();
    const window = this.windowFor(user, now);
    if (window.consumed >= this.points) return { allowed: false, retryAfterMs: Math.max(1, window.resetAt - now) };
    window.consumed++;
    return ALLOWED;
  }

  /** Counts frames already allowed elsewhere (the cluster limiter hands over when Redis fails). */
  charge(user: string, frames: number): void {
    if (frames > 0) this.windowFor(user, Date.now()).consumed += frames;
  }

  close(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  private windowFor(user: string, now: number): Window {
    let window = this.windows.get(user);
    if (window === undefined || now >= window.resetAt) {
      window = { consumed: 0, resetAt: now + this.durationMs };
      this.windows.set(user, window);
      this.sweeper ??= setInterval(() => this.sweep(), this.durationMs).unref();
    }
    return window;
  }

  /** Forgets expired windows, so users who went quiet cost nothing. */
  private sweep(): void {
    const now = Date.now();
    for (const [user, window] of this.windows) if (now >= window.resetAt) this.windows.delete(user);
    if (this.windows.size === 0) this.close();
  }
}
