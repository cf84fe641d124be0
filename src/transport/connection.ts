// The transport seen by the rest of the code: a connection can only be
// written to and closed (centrifuge's Transport). Reading and protocol
// handling live in the session, not here, so sessions can be driven in tests
// without a network and uWebSockets.js stays inside one adapter.
import type { Close } from '../errors/codes';

/** Result of a send: written to the socket, queued in the send buffer, or not sent at all. */
export const enum SendResult {
  Sent = 1,
  Buffered = 0,
  Dropped = 2,
}

export interface Connection {
  /** Sends a text frame. A slow consumer (buffer over the limit) is closed with 4010 by the adapter. */
  send(text: string): SendResult;
  /** Closes with a code from errors/codes CLOSE; idempotent. */
  close(close: Close): void;
  /** Runs `fn` with writes batched into one syscall (uWS cork); sends from timers or bus callbacks should use it. */
  cork(fn: () => void): void;
  readonly closed: boolean;
}
