// A streamed HTTP exchange on uWebSockets.js (the tunnel relay's public side).
// uWS 20.30 has no collectBody and no streams: the body comes through onData
// (its memory reused after each call, so chunks are copied) with pause/resume,
// and the response goes out through
// - write() in chunked mode: uWS keeps what the socket did not take, and
//   write() says false; the relay then waits for onWritable before it asks
//   the sidecar for more (credit), so the buffer stays about one chunk;
// - tryEnd() with a known length: uWS keeps nothing it could not send, so the
//   unsent rest of the chunk is kept here (with the chunks the relay writes
//   behind it meanwhile, at most its credit window) and retried from
//   onWritable at the offset uWS reports.
// Writes come from timers and Redis callbacks: each is corked.
import type uWS from 'uWebSockets.js';
import { requestInfo, statusLine, writeReply } from './uws-http';
import type { HttpExchange, HttpReply, RequestInfo } from './http-types';

export class UwsExchange implements HttpExchange {
  readonly request: RequestInfo;
  finished = false;
  private abortedCallback: (() => void) | undefined;
  private drainedCallback: (() => void) | undefined;
  /** Body bytes may still be on the wire: a reply then closes the connection rather than parse them. */
  private bodyUnread: boolean;
  /** end() came while a known-length chunk was still unsent. */
  private ending = false;
  /** Known-length mode: the total, and the part of a chunk uWS did not take (with the write offset it started at). */
  private total: number | undefined;
  private unsent: { chunk: Uint8Array; startOffset: number } | undefined;
  /** Known-length mode: chunks written while `unsent` waits (at most the relay's credit window). */
  private waiting: Uint8Array[] = [];

  constructor(
    private readonly res: uWS.HttpResponse,
    req: uWS.HttpRequest,
  ) {
    this.request = requestInfo(res, req);
    const { method, headers } = this.request;
    this.bodyUnread = method !== 'get' && method !== 'head' && (Number(headers['content-length'] ?? 0) > 0 || headers['transfer-encoding'] !== undefined);
    res.onAborted(() => {
      if (this.finished) return;
      this.finished = true;
      this.abortedCallback?.();
    });
    res.onWritable((offset) => this.writable(offset));
  }

  onAborted(callback: () => void): void {
    this.abortedCallback = callback;
  }

  onDrained(callback: () => void): void {
    this.drainedCallback = callback;
  }

  readBody(onChunk: (chunk: Buffer, last: boolean) => void): void {
    const { method } = this.request;
    if (method === 'get' || method === 'head') return onChunk(Buffer.alloc(0), true);
    this.res.onData((chunk, last) => {
      if (last) this.bodyUnread = false;
      if (!this.finished) onChunk(Buffer.from(new Uint8Array(chunk)), last);
    });
  }

  pauseBody(): void {
    if (!this.finished) this.res.pause();
  }

  resumeBody(): void {
    if (!this.finished) this.res.resume();
  }

  writeHead(status: number, headers: readonly (readonly [string, string])[], framing: { contentLength?: number; headOnly?: boolean }): void {
    if (this.finished) return;
    this.res.cork(() => {
      this.res.writeStatus(statusLine(status));
      for (const [name, value] of headers) this.res.writeHeader(name, value);
      if (framing.headOnly) {
        this.finished = true;
        this.res.endWithoutBody(framing.contentLength);
      } else if (framing.contentLength === 0) {
        this.finished = true;
        this.res.end();
      }
    });
    this.total = framing.contentLength;
  }

  write(chunk: Uint8Array): boolean {
    if (this.finished) return false;
    let ok = true;
    if (this.total === undefined) {
      this.res.cork(() => (ok = this.res.write(chunk)));
      return ok;
    }
    // Chunks the relay had credit for keep coming while one waits for the socket: they wait behind it.
    if (this.unsent !== undefined) {
      this.waiting.push(chunk);
      return false;
    }
    this.res.cork(() => (ok = this.tryEndChunk(chunk)));
    return ok;
  }

  /** tryEnd of a whole chunk: false when the socket did not take all of it (the rest is kept for onWritable). */
  private tryEndChunk(chunk: Uint8Array): boolean {
    const startOffset = this.res.getWriteOffset();
    const [sent, done] = this.res.tryEnd(chunk, this.total ?? 0);
    if (done) this.finished = true;
    else if (!sent) {
      this.unsent = { chunk, startOffset };
      return false;
    }
    return true;
  }

  end(): void {
    if (this.finished) return;
    // Known length: the last tryEnd ends it (then finished is set); a body shorter than announced is a broken response.
    if (this.total !== undefined) {
      if (this.unsent !== undefined) this.ending = true;
      else this.abort();
      return;
    }
    this.finished = true;
    this.res.cork(() => this.res.end());
  }

  reply(reply: HttpReply): void {
    if (this.finished) return;
    this.finished = true;
    // A request answered before its body was read has the rest on the wire: close rather than parse it.
    this.res.cork(() => writeReply(this.res, reply, this.bodyUnread));
  }

  abort(): void {
    if (this.finished) return;
    this.finished = true;
    this.res.close();
  }

  private writable(offset: number): boolean {
    const unsent = this.unsent;
    if (unsent !== undefined && this.total !== undefined) {
      const [sent, done] = this.res.tryEnd(unsent.chunk.subarray(offset - unsent.startOffset), this.total);
      if (done) this.finished = true;
      if (!sent && !done) return false;
      this.unsent = undefined;
      // Then the chunks that waited behind it, as far as the socket takes them.
      while (!this.finished && this.unsent === undefined && this.waiting.length > 0) this.tryEndChunk(this.waiting.shift() as Uint8Array);
      if (this.unsent !== undefined) return true;
      if (this.ending && !this.finished) this.abort();
    }
    if (!this.finished) this.drainedCallback?.();
    return true;
  }
}
