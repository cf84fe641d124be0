// The one error type of the SDK. `code` is a server error code (SPEC §3.6:
// `peer_offline`, `forbidden`, `rate_limited`, ...) or one of the client's own.
import type { ErrorCode } from '../errors/codes';

export type ClientErrorCode =
  /** No answer within `sendTimeoutMs`. The message may still have been delivered. */
  | 'timeout'
  /** The socket closed before the answer came. The message may or may not have been delivered. */
  | 'closed'
  /** Called while the client had no open connection; nothing was sent. */
  | 'not_connected'
  /** The token provider threw or returned something that is not a non-empty string. */
  | 'token_provider'
  /** The server sent a frame the client could not read. */
  | 'bad_frame';

export class SwitchboardError extends Error {
  override readonly name = 'SwitchboardError';

  constructor(
    readonly code: ErrorCode | ClientErrorCode,
    message: string,
    /** The request's id, when the error answers one. */
    readonly id?: string,
    /** With `rate_limited`: how long to wait before sending again. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}
