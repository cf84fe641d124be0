// One proxied request at the back end, as an undici dispatch handler: undici
// calls it as the response arrives, and it writes the response up the tunnel
// (response-writer.ts). The relay (http-relay.ts) routes the server's credit
// and cancel to it and hears once how it ended.
//
//   dispatch ──onRequestStart (controller)──► onResponseStart ──► onResponseData… ──► onResponseEnd ──► ended
//       cancel: controller.abort ──► onResponseError ──► ended (no reply)
//       out of credit: controller.pause … grant ──► flush, controller.resume
//
// A handler rather than `request()`: no Readable body, no AbortController and
// no promise per request. With `request()` those were the largest part of the
// sidecar's own CPU per small request (bench W6: about 80 µs per request
// before, about 50 after, with the header caches of headers.ts).
// undici calls some of these methods synchronously
// from inside controller.abort() and controller.resume(), so every state
// change is made before those calls, and `ended` guards against a second end.
import type { Dispatcher } from 'undici';
import type { ChannelSender } from './channel';
import { SendWindow } from './credit';
import { relayedResponseHeaders } from './headers';
import type { StreamedBody } from './request-body';
import { shouldStream, StreamedResponse, TooLargeError, WholeResponse } from './response-writer';

/** Why an exchange ended without its response: what the relay logs and answers (docs/tunnel-sidecar.md). */
export type ExchangeFailure =
  /** proxy_cancel, a protocol violation or a closed socket: nobody waits for an answer. */
  | { kind: 'cancelled'; why: string }
  /** No response from the back end: 502 backend_unreachable. */
  | { kind: 'unreachable'; error: Error }
  /** A whole response broke off: 502 backend_error. */
  | { kind: 'broken'; error: Error }
  /** A whole response over MAX_WHOLE_BODY_BYTES: 502 response_too_large. */
  | { kind: 'too_large'; error: Error }
  /** A streamed response broke off after proxy_res_start: proxy_res_error. */
  | { kind: 'broken_stream'; error: Error };

export interface ExchangeDeps {
  channel: ChannelSender;
  /** The streamed upload, if any: ended with the exchange. */
  body: StreamedBody | undefined;
  /** Called once: `failure` undefined when the whole response went up the tunnel. */
  onEnd(exchange: Exchange, failure: ExchangeFailure | undefined): void;
}

export class Exchange implements Dispatcher.DispatchHandler {
  private readonly window = new SendWindow();
  /** undici's handle on the request; undefined while it waits in the pool for a connection. */
  private controller: Dispatcher.DispatchController | undefined;
  private response: WholeResponse | StreamedResponse | undefined;
  /** The final status, once the back end sent it. */
  status: number | undefined;
  /** The back end sent all of its response (a streamed one may still wait for credit here). */
  private received = false;
  private cancelled: string | undefined;
  private ended = false;

  constructor(
    readonly requestId: string,
    readonly method: string,
    readonly path: string,
    private readonly deps: ExchangeDeps,
  ) {}

  /** The streamed upload the relay feeds with proxy_req_chunk, if any. */
  get body(): StreamedBody | undefined {
    return this.deps.body;
  }

  // ── undici's side ──

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // Cancelled while it waited for a connection: undici can abort a request only once it has one.
    if (this.cancelled !== undefined) controller.abort(new Error(this.cancelled));
  }

  onResponseStart(_controller: Dispatcher.DispatchController, status: number, headers: Readonly<Record<string, string | string[] | undefined>>): void {
    // 1xx is informational: the final response follows (request() skips them too).
    if (status < 200) return;
    const length = headers['content-length'];
    const head = { status, headers: relayedResponseHeaders(headers), contentLength: typeof length === 'string' && /^\d+$/.test(length) ? Number(length) : undefined };
    this.status = status;
    if (!shouldStream(this.deps.channel, this.method, head)) return void (this.response = new WholeResponse(head));
    const streamed = new StreamedResponse(this.deps.channel, this.requestId, this.window);
    this.response = streamed;
    streamed.start(head);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const response = this.response;
    if (response instanceof WholeResponse) {
      if (!response.add(chunk)) controller.abort(new TooLargeError());
    } else if (response !== undefined && !response.write(chunk)) {
      controller.pause();
    }
  }

  onResponseEnd(): void {
    this.received = true;
    const response = this.response;
    if (response instanceof WholeResponse) response.send(this.deps.channel, this.requestId);
    else if (response !== undefined && !response.end()) return; // the rest goes at the next grants
    this.end(undefined);
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error): void {
    // The controller is undefined for a request that failed before it had a connection.
    if (this.cancelled !== undefined) return this.end({ kind: 'cancelled', why: this.cancelled });
    const response = this.response;
    if (response === undefined) return this.end({ kind: 'unreachable', error });
    if (response instanceof StreamedResponse) return this.end({ kind: 'broken_stream', error });
    this.end({ kind: error instanceof TooLargeError ? 'too_large' : 'broken', error });
  }

  // ── the server's side ──

  /** proxy_credit: send what waited; once nothing waits, let the back end go on. */
  grant(bytes: number): void {
    this.window.grant(bytes);
    const response = this.response;
    if (this.ended || !(response instanceof StreamedResponse) || !response.flush()) return;
    if (this.received) return this.end(undefined);
    // May call onResponseData / onResponseEnd at once, with what undici had read already.
    this.controller?.resume();
  }

  /** Stops the back-end work without an answer: the server has answered, or will answer, the public client itself. */
  cancel(why: string): void {
    if (this.ended || this.cancelled !== undefined) return;
    this.cancelled = why;
    this.deps.body?.fail(new Error(why));
    // A response fully received only waited for credit; one in flight ends through onResponseError.
    if (this.received) this.end({ kind: 'cancelled', why });
    else this.controller?.abort(new Error(why));
  }

  private end(failure: ExchangeFailure | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.deps.body?.fail(new Error('the request is over'));
    this.deps.onEnd(this, failure);
  }
}
