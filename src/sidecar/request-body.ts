// A streamed request body (proxy_req{streamed} → proxy_req_chunk* →
// proxy_req_end) as the async iterable undici reads the upload from.
//
// Back-pressure: undici pulls the next chunk only once it has written the
// last one to the back end's socket (it awaits 'drain' when the socket is
// full). So a chunk counts as consumed when the iterator is resumed after
// yielding it, and only then is credit granted back to the server: a back end
// that reads slowly holds the server to the initial window.
import { ReceiveWindow } from './credit';

export type ChunkProblem = 'out_of_order' | 'over_credit' | 'after_end';

export class StreamedBody implements AsyncIterable<Buffer> {
  private readonly queue: Buffer[] = [];
  private readonly window = new ReceiveWindow();
  private nextSeq = 0;
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  /** `grant` is called with the credit to send back to the server. */
  constructor(private readonly grant: (bytes: number) => void) {}

  /** Queues a chunk; a problem means the server broke the protocol and the request must be aborted. */
  push(seq: number, data: Buffer): ChunkProblem | undefined {
    if (this.ended) return 'after_end';
    if (seq !== this.nextSeq) return 'out_of_order';
    this.nextSeq++;
    if (!this.window.receive(data.length)) return 'over_credit';
    if (data.length > 0) this.queue.push(data);
    this.notify();
    return undefined;
  }

  end(): void {
    this.ended = true;
    this.notify();
  }

  /** Ends the upload with an error (a cancel, a protocol violation): undici's pull throws it. */
  fail(error: Error): void {
    this.failure ??= error;
    this.notify();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      const chunk = this.queue.shift();
      if (chunk !== undefined) {
        yield chunk;
        const credit = this.window.consume(chunk.length);
        if (credit > 0) this.grant(credit);
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
