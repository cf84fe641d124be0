// The transport seen by the rest of the code: a connection can only be
// written to and closed (centrifuge's Transport). Reading and protocol
// handling live in the session, not here, so sessions can be driven in tests
// without a network and uWebSockets.js stays inside one adapter.
import type { Close } from '../errors/codes';

export interface Connection {
  /**
   * Queues a text frame; the frames of one event-loop turn go out in one write at its end. A slow
   * consumer (send buffer over the limit) is closed with 4010 by the adapter.
   */
  send(text: string): void;
  /** Writes what is queued, then closes with a code from errors/codes CLOSE; idempotent. */
  close(close: Close): void;
  readonly closed: boolean;
}
