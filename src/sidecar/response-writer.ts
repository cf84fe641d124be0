// How a back-end response goes up the tunnel: whole, as one `proxy_res`, or
// streamed, as proxy_res_start / proxy_res_chunk… / proxy_res_end within the
// credit the server grants (docs/tunnel-extensions.md).
//
// Whole when the channel has no `stream`, or when the body is known to be
// small: no body (HEAD, 204, 304) or a Content-Length of at most
// SMALL_BODY_BYTES. Everything else streams, since its length is unknown
// (chunked, server-sent events) or large: the first bytes go up as soon as
// the back end sends them, and memory stays bounded by the credit window.
import type { Readable } from 'node:stream';
import { CHUNK_MAX_BYTES } from '../protocol/tunnel-stream-frames';
import { proxyResponsePayload } from '../protocol/tunnel-sidecar-frames';
import { streamEventPayload } from '../protocol/tunnel-stream-frames';
import type { ChannelSender } from './channel';
import type { SendWindow } from './credit';

/** A body up to this size, announced by Content-Length, goes in one proxy_res. */
export const SMALL_BODY_BYTES = 64 * 1024;
/** The most a whole (baseline) response may hold: the server's MAX_RESPONSE_BYTES default. */
export const MAX_WHOLE_BODY_BYTES = 100 * 1024 * 1024;

export interface BackendResponse {
  status: number;
  /** Already filtered for the tunnel (headers.ts). */
  headers: Record<string, string>;
  body: Readable;
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

export function shouldStream(channel: ChannelSender, method: string, res: BackendResponse): boolean {
  if (!channel.extensions.has('stream')) return false;
  const bodiless = method === 'HEAD' || res.status === 204 || res.status === 304 || res.status < 200;
  return !bodiless && !(res.contentLength !== undefined && res.contentLength <= SMALL_BODY_BYTES);
}

/** Reads the whole body and sends it as one proxy_res: base64 with binary_body, else as UTF-8 text (the baseline's limit). */
export async function sendWhole(channel: ChannelSender, requestId: string, res: BackendResponse): Promise<void> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > MAX_WHOLE_BODY_BYTES) {
      res.body.destroy();
      throw new TooLargeError();
    }
    chunks.push(chunk);
  }
  const bytes = Buffer.concat(chunks, total);
  const base64 = channel.extensions.has('binary_body');
  channel.send('proxy_res', proxyResponsePayload({ requestId, status: res.status, headers: res.headers, body: bytes.toString(base64 ? 'base64' : 'utf8'), base64 }));
}

export interface StreamControl {
  window: SendWindow;
  signal: AbortSignal;
  /** Resolves at the next credit grant or cancel. */
  creditOrCancel(): Promise<void>;
  /** Called once proxy_res_start is on the wire: from then on a failure is a proxy_res_error. */
  started(): void;
}

/** Streams the body: never more data on the wire than the credit window allows, chunks of at most CHUNK_MAX_BYTES. */
export async function sendStreamed(channel: ChannelSender, requestId: string, res: BackendResponse, control: StreamControl): Promise<void> {
  channel.send('proxy_res_start', streamEventPayload({ event: 'proxy_res_start', requestId, status: res.status, headers: Object.entries(res.headers) }));
  control.started();
  let seq = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    for (let offset = 0; offset < chunk.length; ) {
      const n = await credit(control, Math.min(CHUNK_MAX_BYTES, chunk.length - offset));
      const data = chunk.subarray(offset, offset + n);
      channel.sendChunk({ event: 'proxy_res_chunk', requestId, seq: seq++, data });
      offset += n;
    }
  }
  channel.send('proxy_res_end', streamEventPayload({ event: 'proxy_res_end', requestId }));
}

/** Claims up to `max` bytes of credit, waiting for a grant while the window is closed. */
async function credit(control: StreamControl, max: number): Promise<number> {
  for (;;) {
    control.signal.throwIfAborted();
    const n = control.window.take(max);
    if (n > 0) return n;
    await control.creditOrCancel();
  }
}
