// Drain (SPEC §6.3): every app socket is told `draining` at once, with the
// moment it will be closed as `reconnect_after_ms`, and the closes (1012) are
// spread evenly over DRAIN_SPREAD_MS, so that a node's clients do not all
// reconnect to the rest of the cluster in the same instant.
import type { Close } from '../errors/codes';

export interface Drainable {
  readonly isClosed: boolean;
  notifyDraining(reconnectAfterMs: number): void;
  close(close: Close): void;
}

export interface DrainOptions {
  spreadMs: number;
  /** Upper bound for the whole drain (SHUTDOWN_TIMEOUT_MS). */
  timeoutMs: number;
  close: Close;
}

const POLL_MS = 20;

export async function drainSessions(sessions: readonly Drainable[], options: DrainOptions): Promise<void> {
  const spread = Math.min(options.spreadMs, options.timeoutMs);
  const timers: NodeJS.Timeout[] = [];
  sessions.forEach((session, index) => {
    const delay = sessions.length <= 1 ? 0 : Math.floor((spread * index) / (sessions.length - 1));
    if (spread > 0) session.notifyDraining(delay);
    if (delay === 0) session.close(options.close);
    else timers.push(setTimeout(() => session.close(options.close), delay));
  });
  // Closing is asynchronous in the transport; wait until every socket reported closed, within the timeout.
  const deadline = Date.now() + options.timeoutMs;
  while (sessions.some((s) => !s.isClosed) && Date.now() < deadline) await new Promise((r) => setTimeout(r, POLL_MS));
  for (const timer of timers) clearTimeout(timer);
}
