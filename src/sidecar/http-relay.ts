// The HTTP relay of one tunnel socket: proxy_req → the back end (undici) →
// proxy_res, or the streamed form when the channel has `stream`.
//
//   proxy_req ──► Exchange (an undici dispatch handler) ──undici──► back end
//      proxy_req_chunk/_end ──► StreamedBody ──(pulled)──► proxy_credit ─► server
//   back end ──► Exchange ──► proxy_res | proxy_res_start, _chunk…(SendWindow), _end
//      proxy_credit ──► Exchange.grant;  proxy_cancel ──► Exchange.cancel (undici's abort)
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
import { Exchange, type ExchangeFailure } from './exchange';
import { backendRequestHeaders } from './headers';
import { StreamedBody } from './request-body';

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

type HttpPush = Extract<ServerPush, { event: 'proxy_req' | 'proxy_req_chunk' | 'proxy_req_end' | 'proxy_credit' | 'proxy_cancel' }>;

const RELAYED: ReadonlySet<string> = new Set(RELAYED_METHODS);

export class HttpRelay {
  private readonly exchanges = new Map<string, Exchange>();
  private readonly ended = (exchange: Exchange, failure: ExchangeFailure | undefined) => this.settle(exchange, failure);

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
        return exchange.grant(push.bytes);
      case 'proxy_cancel':
        return exchange.cancel('cancelled by the server');
    }
  }

  /** The socket is gone: the server has already answered these requests (502); stop the back-end work. */
  abortAll(): void {
    for (const exchange of this.exchanges.values()) exchange.cancel('the tunnel socket closed');
  }

  private start(request: ProxyRequestPush): void {
    const { channel, backend, logger } = this.deps;
    const { requestId, method } = request;
    if (this.exchanges.has(requestId)) return void logger.warn({ request_id: requestId }, 'ignored a proxy_req with a request_id in use');
    if (!RELAYED.has(method) || !request.path.startsWith('/')) {
      this.log(requestId, method, request.path).warn('refused a request this relay does not make');
      return this.replyError(requestId, RELAYED.has(method) ? 400 : 405, RELAYED.has(method) ? 'bad_request' : 'method_not_allowed');
    }
    const body = request.streamed ? new StreamedBody((bytes) => channel.send('proxy_credit', streamEventPayload({ event: 'proxy_credit', requestId, bytes }))) : undefined;
    const exchange = new Exchange(requestId, method, request.path, { channel, body, onEnd: this.ended });
    this.exchanges.set(requestId, exchange);
    // A failure to even start (a header value undici refuses) comes back through the exchange, at once.
    backend.dispatcher.dispatch(
      {
        path: `${backend.basePath}${request.path}${request.queryString === '' ? '' : `?${request.queryString}`}`,
        method,
        headers: backendRequestHeaders(request.headers, { streamed: request.streamed }),
        body: body !== undefined ? Readable.from(body, { objectMode: false, highWaterMark: 1 }) : request.body.length > 0 ? request.body : null,
        // With `stream` the server cancels what its client gave up on, so a quiet stream (server-sent events) may last.
        // Undefined keeps the pool's default.
        bodyTimeout: channel.extensions.has('stream') ? 0 : undefined,
      },
      exchange,
    );
  }

  /** An exchange ended: answer its failure, if anyone still waits for an answer. */
  private settle(exchange: Exchange, failure: ExchangeFailure | undefined): void {
    const { requestId } = exchange;
    this.exchanges.delete(requestId);
    if (failure === undefined) {
      if (this.deps.logger.isLevelEnabled('debug')) this.log(requestId, exchange.method, exchange.path).debug({ status: exchange.status }, 'relayed');
    } else if (failure.kind === 'cancelled') {
      if (this.deps.logger.isLevelEnabled('debug')) this.log(requestId, exchange.method, exchange.path).debug({ why: failure.why }, 'request ended early');
    } else {
      const { error } = failure;
      const log = this.log(requestId, exchange.method, exchange.path);
      const detail = { err: error.message, code: (error as NodeJS.ErrnoException).code };
      switch (failure.kind) {
        case 'broken_stream':
          log.warn(detail, 'the back end broke off a streamed response');
          this.deps.channel.send('proxy_res_error', streamEventPayload({ event: 'proxy_res_error', requestId, reason: 'backend_error' }));
          break;
        case 'too_large':
          log.warn(detail, 'response too large for one proxy_res');
          this.replyError(requestId, 502, 'response_too_large');
          break;
        case 'unreachable':
          log.warn(detail, 'the back end is unreachable');
          this.replyError(requestId, 502, 'backend_unreachable');
          break;
        case 'broken':
          log.warn(detail, 'the back end broke off a response');
          this.replyError(requestId, 502, 'backend_error');
          break;
      }
    }
    this.deps.onSettled();
  }

  /**
   * A child logger for one request, made only when something is logged: a pino child per request
   * was a few per cent of the sidecar's CPU. The path goes without its query: a query string may
   * hold credentials, and logs never do.
   */
  private log(requestId: string, method: string, path: string): Logger {
    return this.deps.logger.child({ request_id: requestId, method, path: path.slice(0, 200) });
  }

  /** A JSON error the public client gets as the response: `{"error":"<code>"}`. */
  private replyError(requestId: string, status: number, code: string): void {
    const body = Buffer.from(JSON.stringify({ error: code }));
    const base64 = this.deps.channel.extensions.has('binary_body');
    this.deps.channel.send(
      'proxy_res',
      proxyResponsePayload({
        requestId,
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
    exchange.cancel(why);
    this.deps.channel.send('proxy_res_error', streamEventPayload({ event: 'proxy_res_error', requestId: exchange.requestId, reason: 'protocol_error' }));
  }
}
