// A streamed HTTP exchange on uWebSockets.js (the tunnel relay's public side).
// uWS 20.30 has no collectBody and no streams: the body comes through onData
// (its memory reused after each call, so chunks are copied) with pause/resume,
// and the response goes out through
// - write() in chunked mode: uWS keeps what the socket did not take, and says
//   so; the relay then waits for onWritable before it asks the sidecar for
//   more (credit), so the buffer stays about one window;
// - tryEnd() with a known length: uWS keeps nothing it could not send, so the
//   unsent rest of the chunk is kept here (with the chunks written behind it
//   meanwhile, at most the relay's credit window) and retried from onWritable
//   at the offset uWS reports.
//
// The response is written at the end of the event-loop turn, corked, like the
// WebSocket Outbox: a sidecar's answer arrives inside uWS's message handler
// for the sidecar's socket, and uWS corks one socket at a time, so a write
// made there went out uncorked — one send() per header fragment (27 for a
// small response, a third of the node's CPU in bench W6). So write() always
// answers "wait for onDrained", and onDrained comes once the turn's writes
// went out (at once when the socket took them).
import type uWS from 'uWebSockets.js';
import { requestInfo, statusLine, writeReply } from './uws-http';
import type { HttpExchange, HttpReply, RequestInfo } from './http-types';

interface Head {
  status: number;
  headers: readonly (readonly [string, string])[];
  contentLength: number | undefined;
  headOnly: boolean;
}

/** Exchanges with writes waiting for the end of the turn. */
const pending: UwsExchange[] = [];
let scheduled = false;

function flushAll(): void {
  scheduled = false;
  for (const exchange of pending.splice(0)) exchange.flush();
}

export class UwsExchange implements HttpExchange {
  readonly request: RequestInfo;
  /** No more writes are taken: the response ended or the client went away. */
  finished = false;
  /** The uWS response is gone (ended, closed or aborted): it may not be touched. */
  private gone = false;
  private abortedCallback: (() => void) | undefined;
  private drainedCallback: (() => void) | undefined;
  /** Body bytes may still be on the wire: a reply then closes the connection rather than parse them. */
  private bodyUnread: boolean;
  /** What waits for the end of the turn. */
  private head: Head | undefined;
  private chunks: Uint8Array[] = [];
  private ending = false;
  private queued = false;
  /** Known-length mode: the total, the part of a chunk uWS did not take (with the offset it started at), and the chunks behind it. */
  private total: number | undefined;
  private unsent: { chunk: Uint8Array; startOffset: number } | undefined;
  private waiting: Uint8Array[] = [];
  /** Chunked mode: uWS buffered what the socket did not take; onWritable says when it did. */
  private backedUp = false;

  constructor(
    private readonly res: uWS.HttpResponse,
    req: uWS.HttpRequest,
  ) {
    this.request = requestInfo(res, req);
    const { method, headers } = this.request;
    this.bodyUnread = method !== 'get' && method !== 'head' && (Number(headers['content-length'] ?? 0) > 0 || headers['transfer-encoding'] !== undefined);
    res.onAborted(() => {
      const wasOpen = !this.gone;
      this.finished = true;
      this.gone = true;
      if (wasOpen) this.abortedCallback?.();
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
      if (!this.gone) onChunk(Buffer.from(new Uint8Array(chunk)), last);
    });
  }

  pauseBody(): void {
    if (!this.gone) this.res.pause();
  }

  resumeBody(): void {
    if (!this.gone) this.res.resume();
  }

  writeHead(status: number, headers: readonly (readonly [string, string])[], framing: { contentLength?: number; headOnly?: boolean }): void {
    if (this.finished) return;
    this.head = { status, headers, contentLength: framing.contentLength, headOnly: framing.headOnly === true };
    this.total = framing.contentLength;
    // A response without a body is complete with its head.
    if (framing.headOnly === true || framing.contentLength === 0) this.finished = true;
    this.schedule();
  }

  /** Takes the chunk for the end of the turn; always false: onDrained comes once it went out. */
  write(chunk: Uint8Array): boolean {
    if (this.finished) return false;
    this.chunks.push(chunk);
    this.schedule();
    return false;
  }

  end(): void {
    if (this.finished) return;
    this.finished = true;
    this.ending = true;
    this.schedule();
  }

  reply(reply: HttpReply): void {
    if (this.finished) return;
    this.finished = true;
    this.gone = true;
    this.res.cork(() => writeReply(this.res, reply, this.bodyUnread));
  }

  abort(): void {
    if (this.gone) return;
    this.finished = true;
    this.gone = true;
    this.chunks = [];
    this.res.close();
  }

  /** Writes what the turn left: head, chunks, end, in one cork (called at the end of the turn). */
  flush(): void {
    this.queued = false;
    if (this.gone) return;
    this.res.cork(() => {
      const head = this.head;
      if (head !== undefined) {
        this.head = undefined;
        this.res.writeStatus(statusLine(head.status));
        for (const [name, value] of head.headers) this.res.writeHeader(name, value);
        if (head.headOnly) return this.over(() => this.res.endWithoutBody(head.contentLength));
        if (head.contentLength === 0) return this.over(() => this.res.end());
      }
      const chunks = this.chunks;
      this.chunks = [];
      for (const chunk of chunks) {
        if (this.total === undefined) {
          if (!this.res.write(chunk)) this.backedUp = true;
        } else if (this.unsent !== undefined) this.waiting.push(chunk);
        else this.tryEndChunk(chunk);
      }
      if (this.ending) this.endBody();
    });
    if (!this.gone && this.unsent === undefined && !this.backedUp) this.drainedCallback?.();
  }

  private schedule(): void {
    if (this.queued) return;
    this.queued = true;
    pending.push(this);
    if (scheduled) return;
    scheduled = true;
    setImmediate(flushAll);
  }

  /** Chunked: the terminating chunk. Known length: the last tryEnd ended it; a body shorter than announced is a broken response. */
  private endBody(): void {
    if (this.gone) return;
    if (this.total === undefined) return this.over(() => this.res.end());
    if (this.unsent !== undefined) return; // writable() finishes it
    this.abort();
  }

  /** tryEnd of a whole chunk: false when the socket did not take all of it (the rest is kept for onWritable). */
  private tryEndChunk(chunk: Uint8Array): boolean {
    const startOffset = this.res.getWriteOffset();
    const [sent, done] = this.res.tryEnd(chunk, this.total ?? 0);
    if (done) {
      this.gone = true;
      this.finished = true;
    } else if (!sent) {
      this.unsent = { chunk, startOffset };
      return false;
    }
    return true;
  }

  private over(end: () => void): void {
    this.gone = true;
    this.finished = true;
    end();
  }

  private writable(offset: number): boolean {
    if (this.gone) return true;
    const unsent = this.unsent;
    if (unsent !== undefined) {
      const [sent, done] = this.res.tryEnd(unsent.chunk.subarray(offset - unsent.startOffset), this.total ?? 0);
      if (done) {
        this.gone = true;
        this.finished = true;
      }
      if (!sent && !done) return false;
      this.unsent = undefined;
      // Then the chunks that waited behind it, as far as the socket takes them.
      while (!this.gone && this.unsent === undefined && this.waiting.length > 0) this.tryEndChunk(this.waiting.shift() as Uint8Array);
      if (this.unsent !== undefined) return true;
      if (this.ending && !this.gone) this.abort();
    }
    this.backedUp = false;
    if (!this.gone) this.drainedCallback?.();
    return true;
  }
}
