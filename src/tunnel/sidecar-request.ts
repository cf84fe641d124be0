// One relayed HTTP request at the sidecar it was sent to (this node's socket):
// the sidecar side of exchange.ts, speaking the baseline or the extensions
// the sidecar was granted.
//
//   body ──► sending ──proxy_req──► waiting ──proxy_res / proxy_res_start──► responding ──► done
//
// Baseline (Telephone): the body is gathered and sent as one proxy_req (UTF-8
// text), and the response comes as one proxy_res; it is passed on in chunks as
// the public side grants credit (the sidecar's message is in memory anyway).
// `binary_body`: the same, base64. `stream`: a body over the threshold (or of
// unknown length) streams down as it comes, within the sidecar's credit; the
// response streams up within ours, and a cancel reaches the sidecar.
import type { ProxyRequest, ProxyResponse } from '../protocol/tunnel-frames';
import type { ChunkEvent, StreamEvent } from '../protocol/tunnel-stream-frames';
import { chunksOf, WINDOW_BYTES, type RelayFailure, type RelayHead, type RequestStream, type ResponseSink } from './exchange';
import { relayedResponseHeaders } from './public-request';

/** What a request needs of its sidecar's socket. */
export interface SidecarChannel {
  push(event: string, payload: object): void;
  /** A body chunk, in a binary message when the sidecar was granted `binary_frames`, else as JSON. */
  pushChunk(chunk: ChunkEvent): void;
  sendProxyRequest(request: ProxyRequest): void;
  readonly binaryBody: boolean;
  readonly stream: boolean;
  readonly maxResponseBytes: number;
  /** A body of at most this many bytes, complete, goes inline even with `stream`. */
  readonly streamThresholdBytes: number;
  /** The request is done with (answered, failed or cancelled): off the sidecar's table. */
  finished(request: SidecarRequest): void;
}

const utf8 = new TextDecoder('utf-8');

export class SidecarRequest implements RequestStream {
  private phase: 'sending' | 'waiting' | 'responding' | 'done' = 'sending';
  /** Streams the body as proxy_req_chunk (decided at open); otherwise gathers it. */
  private readonly streamsBody: boolean;
  private gathered: Buffer[] = [];
  private bodySeq = 0;
  /** Response bytes received (stream) or passed on (whole), against MAX_RESPONSE_BYTES. */
  private responseBytes = 0;
  private responseSeq = 0;
  /** A whole response still being passed on, and the public side's credit for it. */
  private pending: Generator<Buffer> | undefined;
  private granted = WINDOW_BYTES;

  constructor(
    private readonly channel: SidecarChannel,
    readonly head: RelayHead,
    private readonly sink: ResponseSink,
  ) {
    const small = head.bodyLength !== undefined && head.bodyLength <= channel.streamThresholdBytes;
    this.streamsBody = channel.stream && !small;
    if (this.streamsBody) this.sendHead('', true);
  }

  get id(): string {
    return this.head.id;
  }

  // ── from the public side ───────────────────────────────────────────────

  body(chunk: Buffer): void {
    if (this.phase !== 'sending') return;
    if (!this.streamsBody) {
      // Gathered in memory (the baseline sends one message); the public side's limit (MAX_REQUEST_BYTES) bounds it.
      this.gathered.push(chunk);
      return this.sink.bodyCredit(chunk.length);
    }
    for (const piece of chunksOf(chunk)) this.channel.pushChunk({ event: 'proxy_req_chunk', requestId: this.id, seq: this.bodySeq++, data: piece });
  }

  bodyEnd(): void {
    if (this.phase !== 'sending') return;
    this.phase = 'waiting';
    if (this.streamsBody) return this.channel.push('proxy_req_end', { request_id: this.id });
    const body = Buffer.concat(this.gathered);
    this.gathered = [];
    this.sendHead(this.channel.binaryBody ? body.toString('base64') : utf8.decode(body), false);
  }

  credit(bytes: number): void {
    if (this.phase !== 'responding') return;
    if (this.pending === undefined) return this.channel.push('proxy_credit', { request_id: this.id, bytes });
    this.granted += bytes;
    this.pump();
  }

  cancel(): void {
    if (this.phase === 'done') return;
    // The Telephone client knows no cancel; only a sidecar that streams is told.
    if (this.channel.stream) this.channel.push('proxy_cancel', { request_id: this.id });
    this.finish();
  }

  // ── from the sidecar ───────────────────────────────────────────────────

  /** A whole `proxy_res` (baseline, or binary_body, or a small answer of a streaming sidecar). */
  onResponse(response: ProxyResponse): void {
    if (this.phase === 'done' || this.phase === 'responding') return;
    const body = response.base64 ? Buffer.from(response.body, 'base64') : Buffer.from(response.body, 'utf8');
    if (body.length > this.channel.maxResponseBytes) return this.fail('response_too_large');
    this.phase = 'responding';
    this.sink.start(response.status, relayedResponseHeaders(response.headers), body.length);
    this.pending = chunksOf(body);
    this.pump();
  }

  onStreamEvent(event: StreamEvent): void {
    if (this.phase === 'done') return;
    switch (event.event) {
      case 'proxy_credit':
        if (this.phase === 'sending' && this.streamsBody) this.sink.bodyCredit(event.bytes);
        return;
      case 'proxy_res_start': {
        if (this.phase === 'responding') return this.broken();
        // A length declared over the limit is refused before anything reaches the public client: it gets a 502, not a cut body.
        const length = declaredLength(event.headers);
        if (length !== undefined && length > this.channel.maxResponseBytes) return this.fail('response_too_large');
        this.phase = 'responding';
        return this.sink.start(event.status, relayedResponseHeaders(event.headers), length);
      }
      case 'proxy_res_chunk':
        if (this.phase !== 'responding' || this.pending !== undefined || event.seq !== this.responseSeq++) return this.broken();
        this.responseBytes += event.data.length;
        if (this.responseBytes > this.channel.maxResponseBytes) return this.fail('response_too_large');
        return this.sink.data(event.data);
      case 'proxy_res_end':
        if (this.phase !== 'responding' || this.pending !== undefined) return this.broken();
        this.finish();
        return this.sink.end();
      case 'proxy_res_error':
        return this.fail('tunnel_error');
      default:
        return; // events a sidecar has no business sending (proxy_req_chunk, proxy_cancel): ignored
    }
  }

  /**
   * The sidecar's socket closed with this request in flight. `handedOver`: the sidecar closed a
   * drained socket and started nothing more on it, so a request without any answer yet was never
   * seen there and fails as `gone` (the public side sends it to another sidecar).
   */
  onSidecarGone(handedOver = false): void {
    if (this.phase === 'done') return;
    this.fail(handedOver && (this.phase === 'sending' || this.phase === 'waiting') ? 'gone' : 'tunnel_disconnected');
  }

  private sendHead(body: string, streamed: boolean): void {
    const { id, method, path, queryString, headers } = this.head;
    const request: ProxyRequest = { requestId: id, method, path, queryString, headers, body };
    if (this.channel.binaryBody) request.bodyEncoding = 'base64';
    if (streamed) request.streamed = true;
    this.channel.sendProxyRequest(request);
  }

  /** Passes a whole response on as far as the public side's credit goes. */
  private pump(): void {
    const pending = this.pending;
    if (pending === undefined) return;
    while (this.granted > 0) {
      const next = pending.next();
      if (next.done === true) {
        this.finish();
        return this.sink.end();
      }
      this.granted -= next.value.length;
      this.sink.data(next.value);
      if (this.phase === 'done') return; // the sink cancelled meanwhile
    }
  }

  /** A sidecar that breaks the stream's rules: the request fails, and the sidecar is told to stop. */
  private broken(): void {
    if (this.channel.stream) this.channel.push('proxy_cancel', { request_id: this.id });
    this.fail('tunnel_error');
  }

  private fail(failure: RelayFailure): void {
    if (failure === 'response_too_large' && this.channel.stream) this.channel.push('proxy_cancel', { request_id: this.id });
    this.finish();
    this.sink.fail(failure);
  }

  private finish(): void {
    if (this.phase === 'done') return;
    this.phase = 'done';
    this.gathered = [];
    this.pending = undefined;
    this.channel.finished(this);
  }
}

/** The response's Content-Length when the sidecar gave a valid one (the relay frames the body with it). */
function declaredLength(headers: readonly (readonly [string, string])[]): number | undefined {
  for (const [name, value] of headers) if (name.toLowerCase() === 'content-length' && /^\d{1,15}$/.test(value.trim())) return Number(value.trim());
  return undefined;
}

