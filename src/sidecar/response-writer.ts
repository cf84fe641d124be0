// How a back-end response goes up the tunnel: whole, as one `proxy_res`, or
// streamed, as proxy_res_start / proxy_res_chunk… / proxy_res_end within the
// credit the server grants (docs/tunnel-extensions.md).
//
// Whole when the channel has no `stream`, or when the body is known to be
// small: no body (HEAD, 204, 304) or a Content-Length of at most
// SMALL_BODY_BYTES. Everything else streams, since its length is unknown
// (chunked, server-sent events) or large: the first bytes go up as soon as
// the back end sends them, and memory stays bounded by the credit window.
//
// The writers are fed by the exchange (exchange.ts) as undici hands it the
// body; they never wait themselves: a streamed response that is out of credit
// says so, and the exchange pauses the back end until the next grant.
import { CHUNK_MAX_BYTES } from '../protocol/tunnel-stream-frames';
import { proxyResponsePayload } from '../protocol/tunnel-sidecar-frames';
import { streamEventPayload } from '../protocol/tunnel-stream-frames';
import type { ChannelSender } from './channel';
import type { SendWindow } from './credit';

/** A body up to this size, announced by Content-Length, goes in one proxy_res. */
export const SMALL_BODY_BYTES = 64 * 1024;
/** The most a whole (baseline) response may hold: the server's MAX_RESPONSE_BYTES default. */
export const MAX_WHOLE_BODY_BYTES = 100 * 1024 * 1024;

export interface ResponseHead {
  status: number;
  /** Already filtered for the tunnel (headers.ts). */
  headers: Record<string, string>;
  /** The Content-Length the back end announced, if any. */
  contentLength: number | undefined;
}

/** Raised when a whole response passes MAX_WHOLE_BODY_BYTES. */
export class TooLargeError extends Error {
  constructor() {
    super(`the response is larger than ${MAX_WHOLE_BODY_BYTES} bytes`);
    this.name = 'TooLargeError';
  }
}

export function shouldStream(channel: ChannelSender, method: string, res: ResponseHead): boolean {
  if (!channel.extensions.has('stream')) return false;
  const bodiless = method === 'HEAD' || res.status === 204 || res.status === 304 || res.status < 200;
  return !bodiless && !(res.contentLength !== undefined && res.contentLength <= SMALL_BODY_BYTES);
}

/** A body gathered in memory and sent as one proxy_res: base64 with binary_body, else as UTF-8 text (the baseline's limit). */
export class WholeResponse {
  private readonly chunks: Buffer[] = [];
  private total = 0;

  constructor(private readonly head: ResponseHead) {}

  /** Keeps a chunk; false once the body passes MAX_WHOLE_BODY_BYTES (the chunk is not kept). */
  add(chunk: Buffer): boolean {
    this.total += chunk.length;
    if (this.total > MAX_WHOLE_BODY_BYTES) return false;
    this.chunks.push(chunk);
    return true;
  }

  send(channel: ChannelSender, requestId: string): void {
    // A small body is usually one chunk: no copy for it.
    const bytes = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.total);
    const base64 = channel.extensions.has('binary_body');
    const { status, headers } = this.head;
    channel.send('proxy_res', proxyResponsePayload({ requestId, status, headers, body: bytes.toString(base64 ? 'base64' : 'utf8'), base64 }));
  }
}

/**
 * A streamed body: never more data on the wire than the credit window allows, chunks of at most
 * CHUNK_MAX_BYTES. What the window does not allow yet waits here (the caller then pauses the back
 * end, so this holds at most about one socket read); what waited goes up merged, as the chunks a
 * stream reader would have been handed.
 */
export class StreamedResponse {
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private seq = 0;
  private ended = false;
  private endSent = false;

  constructor(
    private readonly channel: ChannelSender,
    private readonly requestId: string,
    private readonly window: SendWindow,
  ) {}

  /** Sends proxy_res_start: from then on a failure is a proxy_res_error. */
  start(head: ResponseHead): void {
    const { requestId, channel } = this;
    channel.send('proxy_res_start', streamEventPayload({ event: 'proxy_res_start', requestId, status: head.status, headers: Object.entries(head.headers) }));
  }

  /** Queues a chunk and sends what the window allows; false when some of it waits for credit. */
  write(chunk: Buffer): boolean {
    if (chunk.length > 0) {
      this.queue.push(chunk);
      this.queued += chunk.length;
    }
    return this.flush();
  }

  /** The back end's body is complete; true once proxy_res_end is on the wire (false: data still waits for credit). */
  end(): boolean {
    this.ended = true;
    return this.flush();
  }

  /** Sends what the window allows (after a grant); true when nothing waits any more. */
  flush(): boolean {
    while (this.queued > 0) {
      const n = this.window.take(Math.min(CHUNK_MAX_BYTES, this.queued));
      if (n === 0) return false;
      const { requestId } = this;
      this.channel.sendChunk({ event: 'proxy_res_chunk', requestId, seq: this.seq++, data: this.dequeue(n) });
    }
    if (this.ended && !this.endSent) {
      this.endSent = true;
      this.channel.send('proxy_res_end', streamEventPayload({ event: 'proxy_res_end', requestId: this.requestId }));
    }
    return true;
  }

  /** The next `n` queued bytes (n ≤ queued). */
  private dequeue(n: number): Buffer {
    this.queued -= n;
    const parts: Buffer[] = [];
    for (let need = n; need > 0; ) {
      const head = this.queue[0] as Buffer;
      if (head.length <= need) {
        this.queue.shift();
        parts.push(head);
        need -= head.length;
      } else {
        this.queue[0] = head.subarray(need);
        parts.push(head.subarray(0, need));
        need = 0;
      }
    }
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, n);
  }
}
