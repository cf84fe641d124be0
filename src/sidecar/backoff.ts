// Reconnect delays: exponential with "equal jitter" (half the step fixed,
// half random), capped. The fixed half keeps a sidecar from hammering a node
// that just refused it; the random half spreads the many sidecars a dead node
// had so they do not all come back in the same millisecond. Pure.

export interface BackoffPolicy {
  /** The first retry's step (its delay is between half of it and all of it). */
  baseMs: number;
  /** No delay is longer than this. */
  capMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 500, capMs: 30_000 };

/** The delay before retry number `attempt` (0 for the first), with `random()` in [0, 1). */
export function backoffDelayMs(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const step = Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(step / 2 + (random() * step) / 2);
}
