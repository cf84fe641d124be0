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
  close(close: Close | { readonly code: number; readonly reason: string }): void;
  readonly closed: boolean;
  /**
   * After a close as a slow consumer: the text frames that were queued but never handed to the
   * socket, in order (the session keeps them for its resume); taken once.
   */
  unsent?(): string[];
}

/** A connection that also carries bytes: what a relayed public WebSocket needs (tunnel/public-websocket.ts). */
export interface ByteConnection extends Connection {
  /**
   * Queues a frame of bytes, in order with the text frames: binary, or text whose bytes are already
   * UTF-8 (a relayed WebSocket's frames, which the relay never decodes).
   */
  sendBytes(data: Uint8Array, binary: boolean): void;
  /** Writes what is queued, then a ping with `data`. */
  ping(data: Uint8Array): void;
}
