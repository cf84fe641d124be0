// Credit accounting of the `stream` extension (docs/tunnel-extensions.md),
// pure: how much a sender may still put on the wire for one request, and when
// a receiver gives credit back. Each direction of each request starts with
// INITIAL_CREDIT_BYTES; `proxy_credit {bytes}` adds to it. The credit a side
// grants is what its consumer has taken, so a slow public client (or a slow
// back end, for uploads) slows the peer instead of filling this process.
import { CHUNK_MAX_BYTES, INITIAL_CREDIT_BYTES } from '../protocol/tunnel-stream-frames';

/** The sending side: data sent may never pass the credit granted. */
export class SendWindow {
  private sent = 0;
  private granted = INITIAL_CREDIT_BYTES;

  /** Bytes that may be sent now. */
  get available(): number {
    return this.granted - this.sent;
  }

  /** Claims up to `max` bytes of credit and returns how many were claimed (0: wait for a grant). */
  take(max: number): number {
    const n = Math.max(0, Math.min(max, this.available));
    this.sent += n;
    return n;
  }

  grant(bytes: number): void {
    this.granted += bytes;
  }
}

/**
 * Credit is given back in batches of at least one chunk's worth: a grant per small chunk would
 * double the frames for nothing. Batching cannot stall the peer: with less than a batch consumed
 * and not granted, the peer still holds more than INITIAL_CREDIT_BYTES - GRANT_BATCH_BYTES of credit.
 */
export const GRANT_BATCH_BYTES = CHUNK_MAX_BYTES;

/** The receiving side: what the peer sent against what it was allowed, and what to grant back. */
export class ReceiveWindow {
  private received = 0;
  private allowed = INITIAL_CREDIT_BYTES;
  private consumedNotGranted = 0;

  /** Counts `bytes` received; false when they exceed the credit the peer had (a protocol violation). */
  receive(bytes: number): boolean {
    this.received += bytes;
    return this.received <= this.allowed;
  }

  /** The consumer took `bytes`: returns the credit to grant now (0: not yet, it waits for a batch). */
  consume(bytes: number): number {
    this.consumedNotGranted += bytes;
    if (this.consumedNotGranted < GRANT_BATCH_BYTES) return 0;
    const grant = this.consumedNotGranted;
    this.consumedNotGranted = 0;
    this.allowed += grant;
    return grant;
  }
}
