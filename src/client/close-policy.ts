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
   * first (the old one was refused or has expired). `resume`: present the
   * last welcome's session (`?resume=`, SPEC §3.9) so that the server gives
   * back its rooms, watches and the messages missed meanwhile; false starts
   * a new session.
   */
  | { kind: 'reconnect'; wait: 'backoff' | 'soon' | 'drain'; newToken: boolean; resume: boolean };

export function closeAction(code: number): CloseAction {
  switch (code) {
    case CLOSE.replaced.code: // 4009: reconnecting would only take the device back from the newer connection
      return { kind: 'stop' };
    case CLOSE.token_invalid.code: // 1008: refused at connect; backoff, since the provider may keep failing. The new token starts afresh.
      return { kind: 'reconnect', wait: 'backoff', newToken: true, resume: false };
    case CLOSE.token_expired.code: // 4001: the in-band refresh did not happen in time; the session is the same user's
      return { kind: 'reconnect', wait: 'soon', newToken: true, resume: true };
    case CLOSE.draining.code: // 1012: this node is leaving; another one takes the session over
      return { kind: 'reconnect', wait: 'drain', newToken: false, resume: true };
    case CLOSE.rate_limited.code: // 4008: closed for abuse: the server ended this session on purpose; back off, then start a new one
      return { kind: 'reconnect', wait: 'backoff', newToken: false, resume: false };
    case CLOSE.slow_consumer.code: // 4010: this connection fell behind; the session's buffer catches up from where it was
    default: // network loss (1006), 1001, 1009, the client's own heartbeat timeout (4000), anything new
      return { kind: 'reconnect', wait: 'backoff', newToken: false, resume: true };
  }
}
