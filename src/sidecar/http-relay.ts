// The HTTP relay of one tunnel socket: proxy_req → the back end (undici) →
// proxy_res, or the streamed form when the channel has `stream`.
//
//   proxy_req ──► exchange ──undici──► back end
//      proxy_req_chunk/_end ──► StreamedBody ──(pulled)──► proxy_credit ─► server
//   back end ──► proxy_res | proxy_res_start, _chunk…(SendWindow), _end
//      proxy_credit ──► SendWindow;  proxy_cancel ──► AbortController
//
// An exchange lives from its proxy_req until the response is sent, fails or is
// cancelled; responses go back on the socket the request came on, which is
// why each socket has its own relay (make-before-break lets an old socket
// finish its requests). Back-end failures (docs/tunnel-sidecar.md):
// before any response → 502 {"error":"backend_unreachable"}; a broken body
// before anything was sent → 502 {"error":"backend_error"}; after
// proxy_res_start → proxy_res_error {reason:"backend_error"}.
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Logger } from '../log/logger';
import { RELAYED_METHODS } from '../protocol/tunnel-frames';
import { proxyResponsePayload, type ProxyRequestPush, type ServerPush } from '../protocol/tunnel-sidecar-frames';
import { streamEventPayload } from '../protocol/tunnel-stream-frames';
import type { ChannelSender } from './channel';
import { SendWindow } from './credit';
import { backendRequestHeaders, relayedResponseHeaders } from './headers';
import { StreamedBody } from './request-body';
import { sendStreamed, sendWhole, shouldStream, TooLargeError, type BackendResponse } from './response-writer';

export interface Backend {
  dispatcher: Dispatcher;
  /** The --to URL's path, without a trailing slash: a prefix of every relayed path. */
  basePath: string;
}

export interface HttpRelayDeps {
  backend: Backend;
  channel: ChannelSender;
  logger: Logger;
  /** An exchange finished: a draining socket may now be idle. */
  onSettled(): void;
}

interface Exchange {
  readonly requestId: string;
  readonly abort: AbortController;
  readonly body: StreamedBody | undefined;
  readonly window: SendWindow;
  /** A streamed response waiting for credit. */
  wake: (() => void) | undefined;
}

type HttpPush = Extract<ServerPush, { event: 'proxy_req' | 'proxy_req_chunk' | 'proxy_req_end' | 'proxy_credit' | 'proxy_cancel' }>;

const RELAYED: ReadonlySet<string> = new Set(RELAYED_METHODS);

export class HttpRelay {
  private readonly exchanges = new Map<string, Exchange>();

  constructor(private readonly deps: HttpRelayDeps) {}

  get inFlight(): number {
    return this.exchanges.size;
  }

  onPush(push: HttpPush): void {
    if (push.event === 'proxy_req') return this.start(push.request);
    // Anything for a request that is unknown or finished is ignored: it crossed a response or a cancel on the wire.
    const exchange = this.exchanges.get(push.requestId);
    if (exchange === undefined) return;
    switch (push.event) {
      case 'proxy_req_chunk': {
        const problem = exchange.body === undefined ? 'not_streamed' : exchange.body.push(push.seq, push.data);
        if (problem !== undefined) this.fail(exchange, `request body chunk refused: ${problem}`);
        return;
      }
      case 'proxy_req_end':
        return exchange.body?.end();
      case 'proxy_credit':
        exchange.window.grant(push.bytes);
        return this.wake(exchange);
      case 'proxy_cancel':
        return this.cancel(exchange, 'cancelled by the server');
    }
  }

  /** The socket is gone: the server has already answered these requests (502); stop the back-end work. */
  abortAll(): void {
    for (const exchange of this.exchanges.values()) this.cancel(exchange, 'the tunnel socket closed');
  }

  private start(request: ProxyRequestPush): void {
    if (this.exchanges.has(request.requestId)) return void this.deps.logger.warn({ request_id: request.requestId }, 'ignored a proxy_req with a request_id in use');
    const abort = new AbortController();
    const grant = (bytes: number) => this.deps.channel.send('proxy_credit', streamEventPayload({ event: 'proxy_credit', requestId: request.requestId, bytes }));
    const exchange: Exchange = {
      requestId: request.requestId,
      abort,
      body: request.streamed ? new StreamedBody(grant) : undefined,
      window: new SendWindow(),
      wake: undefined,
    };
    this.exchanges.set(request.requestId, exchange);
    void this.relay(exchange, request).finally(() => {
      this.exchanges.delete(request.requestId);
      this.deps.onSettled();
    });
  }

  private async relay(exchange: Exchange, request: ProxyRequestPush): Promise<void> {
    const { channel, backend } = this.deps;
    // The path without its query: a query string may hold credentials, and logs never do. Made only
    // when something is logged: a pino child per request was a few per cent of the sidecar's CPU.
    let child: Logger | undefined;
    const log = () => (child ??= this.deps.logger.child({ request_id: request.requestId, method: request.method, path: request.path.slice(0, 200) }));
    if (!RELAYED.has(request.method) || !request.path.startsWith('/')) {
      log().warn('refused a request this relay does not make');
      return this.replyError(exchange, RELAYED.has(request.method) ? 400 : 405, RELAYED.has(request.method) ? 'bad_request' : 'method_not_allowed');
    }
    let started = false;
    let response: BackendResponse | undefined;
    try {
      const res = await backend.dispatcher.request({
        path: `${backend.basePath}${request.path}${request.queryString === '' ? '' : `?${request.queryString}`}`,
        method: request.method,
        headers: backendRequestHeaders(request.headers, { streamed: request.streamed }),
        body: exchange.body !== undefined ? Readable.from(exchange.body, { objectMode: false, highWaterMark: 1 }) : request.body.length > 0 ? request.body : null,
        signal: exchange.abort.signal,
        // With `stream` the server cancels what its client gave up on, so a quiet stream (server-sent events) may last.
        ...(channel.extensions.has('stream') ? { bodyTimeout: 0 } : {}),
      });
      const length = res.headers['content-length'];
      response = { status: res.statusCode, headers: relayedResponseHeaders(res.headers), body: res.body, contentLength: typeof length === 'string' && /^\d+$/.test(length) ? Number(length) : undefined };
      if (exchange.abort.signal.aborted) return void res.body.destroy();
      if (!shouldStream(channel, request.method, response)) await sendWhole(channel, request.requestId, response);
      else
        await sendStreamed(channel, request.requestId, response, {
          window: exchange.window,
          signal: exchange.abort.signal,
          creditOrCancel: () => new Promise<void>((resolve) => (exchange.wake = resolve)),
          started: () => (started = true),
        });
      if (this.deps.logger.isLevelEnabled('debug')) log().debug({ status: response.status }, 'relayed');
    } catch (error) {
      response?.body.destroy();
      if (exchange.abort.signal.aborted) return void log().debug({ why: String(exchange.abort.signal.reason) }, 'request ended early');
      const detail = error instanceof Error ? { err: error.message, code: (error as NodeJS.ErrnoException).code } : { err: String(error) };
      if (started) {
        log().warn(detail, 'the back end broke off a streamed response');
        channel.send('proxy_res_error', streamEventPayload({ event: 'proxy_res_error', requestId: request.requestId, reason: 'backend_error' }));
      } else if (error instanceof TooLargeError) {
        log().warn(detail, 'response too large for one proxy_res');
        this.replyError(exchange, 502, 'response_too_large');
      } else {
        log().warn(detail, response === undefined ? 'the back end is unreachable' : 'the back end broke off a response');
        this.replyError(exchange, 502, response === undefined ? 'backend_unreachable' : 'backend_error');
      }
    } finally {
      exchange.body?.fail(new Error('the request is over'));
    }
  }

  /** A JSON error the public client gets as the response: `{"error":"<code>"}`. */
  private replyError(exchange: Exchange, status: number, code: string): void {
    const body = Buffer.from(JSON.stringify({ error: code }));
    const base64 = this.deps.channel.extensions.has('binary_body');
    this.deps.channel.send(
      'proxy_res',
      proxyResponsePayload({
        requestId: exchange.requestId,
        status,
        headers: { 'Content-Type': 'application/json', 'Content-Length': String(body.length) },
        body: body.toString(base64 ? 'base64' : 'utf8'),
        base64,
      }),
    );
  }

  /** The server broke the stream protocol for this request: stop it and tell the server. */
  private fail(exchange: Exchange, why: string): void {
    this.deps.logger.warn({ request_id: exchange.requestId, why }, 'aborting a request');
    this.cancel(exchange, why);
    this.deps.channel.send('proxy_res_error', streamEventPayload({ event: 'proxy_res_error', requestId: exchange.requestId, reason: 'protocol_error' }));
  }

  private cancel(exchange: Exchange, why: string): void {
    exchange.abort.abort(why);
    exchange.body?.fail(new Error(why));
    this.wake(exchange);
  }

  private wake(exchange: Exchange): void {
    const wake = exchange.wake;
    exchange.wake = undefined;
    wake?.();
  }
}
