// Jittered exponential backoff for reconnects. The n-th delay (n from 0) is
//   base = min(maxMs, initialMs * factor^n),  delay in [base * (1 - jitter), base]
// so a delay never exceeds maxMs, and clients dropped together (a node crash)
// spread their reconnects over up to `jitter` of the interval instead of
// arriving at once.

export interface BackoffOptions {
  /** First delay, before jitter. */
  initialMs: number;
  /** Cap of every delay. */
  maxMs: number;
  /** Growth per attempt, >= 1. */
  factor: number;
  /** Share of each delay that is random, 0..1 (0: exact delays; 1: anywhere in [0, base]). */
  jitter: number;
  /** A connection that stayed up this long resets the attempts (the next drop starts at initialMs again). */
  resetAfterMs: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = Object.freeze({
  initialMs: 500,
  maxMs: 20_000,
  factor: 2,
  jitter: 0.5,
  resetAfterMs: 10_000,
});

export function backoffOptions(given: Partial<BackoffOptions> = {}): BackoffOptions {
  const options = { ...DEFAULT_BACKOFF, ...given };
  const { initialMs, maxMs, factor, jitter, resetAfterMs } = options;
  if (!(initialMs > 0) || !(maxMs >= initialMs) || !(factor >= 1) || !(jitter >= 0 && jitter <= 1) || !(resetAfterMs >= 0))
    throw new RangeError(`invalid backoff ${JSON.stringify(options)}: need 0 < initialMs <= maxMs, factor >= 1, 0 <= jitter <= 1, resetAfterMs >= 0`);
  return options;
}

export class Backoff {
  private attempt = 0;

  constructor(
    private readonly options: BackoffOptions,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt; each call counts one attempt. */
  next(): number {
    const { initialMs, maxMs, factor, jitter } = this.options;
    // The exponent stops growing once the cap is reached, so it never overflows to Infinity.
    const base = Math.min(maxMs, initialMs * factor ** this.attempt);
    if (base < maxMs) this.attempt++;
    return base * (1 - jitter * this.random());
  }

  reset(): void {
    this.attempt = 0;
  }
}
