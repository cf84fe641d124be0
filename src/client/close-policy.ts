// What the client does when the server closes its socket: the close codes
// carry the reconnect policy (SPEC §3.8; the codes come from the server's own
// table in src/errors/codes.ts, so the two cannot drift apart).
import { CLOSE } from '../errors/codes';

export type CloseAction =
  /** Do not reconnect: another connection of the same (user, device) took over. */
  | { kind: 'stop' }
  /**
   * Reconnect (to the next URL when there are several). `wait`: `backoff` is
   * the jittered exponential delay; `soon` a short jittered delay; `drain`
   * waits until the `draining` frame's `reconnect_after_ms` has passed, then a
   * short jittered delay. `newToken`: ask the token provider for a fresh token
   * first (the old one was refused or has expired).
   */
  | { kind: 'reconnect'; wait: 'backoff' | 'soon' | 'drain'; newToken: boolean };

export function closeAction(code: number): CloseAction {
  switch (code) {
    case CLOSE.replaced.code: // 4009: reconnecting would only take the device back from the newer connection
      return { kind: 'stop' };
    case CLOSE.token_invalid.code: // 1008: refused at connect; backoff, since the provider may keep failing
      return { kind: 'reconnect', wait: 'backoff', newToken: true };
    case CLOSE.token_expired.code: // 4001: the in-band refresh did not happen in time
      return { kind: 'reconnect', wait: 'soon', newToken: true };
    case CLOSE.draining.code: // 1012: this node is leaving; another one takes the connection
      return { kind: 'reconnect', wait: 'drain', newToken: false };
    case CLOSE.slow_consumer.code: // 4010: this connection fell behind; a fresh one starts empty
    default: // network loss (1006), 1001, 4008 rate-limit abuse, 1009, anything new
      return { kind: 'reconnect', wait: 'backoff', newToken: false };
  }
}
