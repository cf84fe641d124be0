// A public HTTP request to /call/<path_id>/<rest> (or <path_id>.<TUNNEL_DOMAIN>),
// relayed to a sidecar on this node or another (SPEC §5).
//
//   routing ──pick──► relaying ──start──► responding ──end──► done
//      │ (none: 503)     │ gone: next sidecar   │ (client slow: credit waits)
//      │                 │ fail/timeout: 502/504 │ fail: connection cut
//      └─────── client hangs up anywhere: the sidecar is told (cancel) ──► done
//
// The body is read as it comes and passed on within the sidecar side's credit;
// reading pauses when a window's worth waits. The response is written as it
// comes, and credit goes back only for what the client's socket took, so a
// slow client slows the sidecar instead of filling this node's memory.
// REQUEST_TIMEOUT_MS bounds every wait for the sidecar: for the response to
// start, and between its chunks (not while the client is the slow one).
import { randomUUID } from 'node:crypto';
import type { Config } from '../config/load';
import type { ForwardingPeer } from '../http/client-ip';
import { audit } from '../log/audit';
import type { Logger } from '../log/logger';
import type { Metrics } from '../metrics/metrics';
import { RELAYED_METHODS, type RelayedMethod } from '../protocol/tunnel-frames';
import { errorReply, type HttpExchange, type HttpReply, type RequestInfo, type StreamRoute } from '../transport/http-types';
import { MaybePromise, whenReady } from '../util/maybe-promise';
import type { TunnelDirectory } from './directory';
import { chunksOf, WINDOW_BYTES, type RelayFailure, type RelayHead, type RequestStream, type ResponseSink, type TunnelTarget } from './exchange';
import { withoutConsumed, type PublicAccessDecision } from './public-access';
import { relayedRequestHeaders, tunnelTarget } from './public-request';

export interface PublicHttpDeps {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  directory: TunnelDirectory;
  /** The peer's address, whether it is a trusted proxy, and the client's scheme (http/client-ip.ts). */
  forwarding: (request: RequestInfo) => ForwardingPeer;
  /** This node's public requests in flight (a drain lets them finish, SPEC §6.3). */
  activity: { requests: number };
  /** TUNNEL_PUBLIC_AUTH and the public rate limits; read synchronously what it needs of the request. */
  access: (request: RequestInfo, pathId: string) => MaybePromise<PublicAccessDecision>;
}

export function publicHttpRoute(deps: PublicHttpDeps): StreamRoute {
  return { pattern: '/*', serve: (exchange) => new PublicRequest(deps, exchange).begin() };
}

/** Credit granted at a response's start beyond the protocol's first window (WINDOW_BYTES). */
const RESPONSE_EXTRA_CREDIT_BYTES = 3 * WINDOW_BYTES;

const FAILURE_MESSAGES: Record<Exclude<RelayFailure, 'gone'>, string> = {
  tunnel_disconnected: 'the tunnel disconnected before it answered',
  tunnel_timeout: 'the tunnel did not answer in time',
  response_too_large: 'the response is larger than this server relays',
  tunnel_error: 'the tunnel could not complete the request',
};

class PublicRequest implements ResponseSink {
  private phase: 'routing' | 'relaying' | 'responding' | 'done' = 'routing';
  private pathId = '';
  private head: RelayHead | undefined;
  private user: string | undefined;
  private target: TunnelTarget | undefined;
  private stream: RequestStream | undefined;
  private readonly tried = new Set<string>();
  /** Body pieces read and not yet passed on, and their size (reading pauses past a window). */
  private queued: Buffer[] = [];
  private queuedBytes = 0;
  private bodyRead = 0;
  private bodyDone = false;
  private bodyEnded = false;
  private paused = false;
  private flushing = false;
  private bodyCreditLeft = WINDOW_BYTES;
  /** What went to a target that has not answered yet: sent again if it turns out `gone`. */
  private unconfirmed: Buffer[] | undefined = [];
  /** Response bytes written while the client's socket was full: credited once it drains. */
  private owed = 0;
  private bytesOut = 0;
  private status = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly began = performance.now();

  constructor(
    private readonly deps: PublicHttpDeps,
    private readonly exchange: HttpExchange,
  ) {}

  begin(): void {
    const { config } = this.deps;
    this.deps.activity.requests++;
    const request = this.exchange.request;
    const address = tunnelTarget(request.path, request.headers.host, config.TUNNEL_DOMAIN);
    if (!address.ok) return this.refuse(address.status === 404 ? errorReply('not_found', 'no such endpoint') : errorReply('bad_request', address.message));
    this.pathId = address.target.pathId;
    const method = request.method.toUpperCase();
    if (!(RELAYED_METHODS as readonly string[]).includes(method))
      return this.refuse({ ...errorReply('method_not_allowed', `${method.slice(0, 16)} is not relayed`), headers: { 'content-type': 'application/json', allow: RELAYED_METHODS.join(', ') } });
    const declared = request.headers['content-length'];
    const bodyLength = declared === undefined ? (request.headers['transfer-encoding'] === undefined ? 0 : undefined) : Number(declared);
    if (bodyLength !== undefined && !(bodyLength <= config.MAX_REQUEST_BYTES)) return this.refuse(errorReply('payload_too_large', `body over ${config.MAX_REQUEST_BYTES} bytes`));
    // What needs the uWS request is read now, before any await.
    const peer = this.deps.forwarding(request);
    const headers = relayedRequestHeaders(request.headers, { ...peer, host: request.headers.host });
    const decision = this.deps.access(request, this.pathId);
    this.exchange.onAborted(() => this.clientGone());
    this.exchange.readBody((chunk, last) => this.bodyChunk(chunk, last));
    whenReady(
      decision,
      (decided) => {
        if (this.phase === 'done' || this.exchange.finished) return;
        if (!decided.ok) return this.refuse(decided.reply);
        this.user = decided.user;
        this.head = { id: randomUUID(), method: method as RelayedMethod, path: address.target.path, queryString: decided.query, headers: withoutConsumed(headers, decided), bodyLength };
        void this.route();
      },
      (error: unknown) => {
        this.deps.logger.error({ err: error }, 'public tunnel access check failed');
        this.refuse(errorReply('internal', 'internal error'));
      },
    );
  }

  // ── routing ────────────────────────────────────────────────────────────

  private async route(): Promise<void> {
    let target: TunnelTarget | undefined;
    try {
      target = await this.deps.directory.pick(this.pathId, this.tried);
    } catch (error) {
      this.deps.logger.error({ err: error }, 'tunnel routing failed');
    }
    // The client may have gone while the registry answered.
    if (this.phase !== 'routing' || this.exchange.finished) {
      if (target !== undefined) this.deps.directory.ended(target);
      return;
    }
    const head = this.head;
    if (target === undefined || head === undefined) return this.refuse(errorReply('no_tunnel', 'no tunnel serves this path'));
    this.phase = 'relaying';
    this.target = target;
    this.tried.add(target.key);
    this.armTimer();
    this.stream = target.request(head, this);
    this.flushBody();
  }

  // ── the request body ───────────────────────────────────────────────────

  private bodyChunk(chunk: Buffer, last: boolean): void {
    if (this.phase === 'done') return;
    this.bodyRead += chunk.length;
    if (this.bodyRead > this.deps.config.MAX_REQUEST_BYTES) {
      this.stream?.cancel();
      return this.refuse(errorReply('payload_too_large', `body over ${this.deps.config.MAX_REQUEST_BYTES} bytes`));
    }
    for (const piece of chunksOf(chunk)) this.queued.push(piece);
    this.queuedBytes += chunk.length;
    if (last) this.bodyDone = true;
    this.flushBody();
  }

  /** Passes queued body on within the sidecar side's credit; pauses the client while a window waits. */
  private flushBody(): void {
    const stream = this.stream;
    if (stream === undefined || this.phase !== 'relaying' || this.flushing) return this.pauseIfFull();
    this.flushing = true;
    while (this.queued.length > 0 && this.bodyCreditLeft > 0 && this.stream === stream) {
      let piece = this.queued.shift() as Buffer;
      // Never past the credit, not even by part of a chunk: the sidecar treats that as a protocol error.
      if (piece.length > this.bodyCreditLeft) {
        this.queued.unshift(piece.subarray(this.bodyCreditLeft));
        piece = piece.subarray(0, this.bodyCreditLeft);
      }
      this.queuedBytes -= piece.length;
      this.bodyCreditLeft -= piece.length;
      this.unconfirmed?.push(piece);
      stream.body(piece);
    }
    this.flushing = false;
    if (this.stream !== stream) return;
    if (this.bodyDone && this.queued.length === 0 && !this.bodyEnded) {
      this.bodyEnded = true;
      stream.bodyEnd();
    }
    this.pauseIfFull();
  }

  private pauseIfFull(): void {
    const full = this.queuedBytes >= WINDOW_BYTES && !this.bodyDone;
    if (full === this.paused) return;
    this.paused = full;
    if (full) this.exchange.pauseBody();
    else this.exchange.resumeBody();
  }

  // ── ResponseSink: what the sidecar side says ───────────────────────────

  bodyCredit(bytes: number): void {
    if (this.phase !== 'relaying') return;
    this.unconfirmed = undefined;
    this.bodyCreditLeft += bytes;
    this.armTimer();
    this.flushBody();
  }

  start(status: number, headers: [string, string][], contentLength: number | undefined): void {
    if (this.phase !== 'relaying') return;
    this.phase = 'responding';
    this.unconfirmed = undefined;
    this.status = status;
    const method = this.head?.method;
    const headOnly = method === 'HEAD' || status === 204 || status === 304 || status < 200;
    this.exchange.writeHead(status, headers, { contentLength, headOnly });
    this.armTimer();
    // A body longer than the first window gets more room at once: the credit then crosses the bus
    // and the sidecar's socket a quarter as often, where one window per round trip bounded a
    // stream across two nodes. This node holds at most that much of it for a slow client.
    if (!headOnly && (contentLength === undefined || contentLength > WINDOW_BYTES)) this.stream?.credit(RESPONSE_EXTRA_CREDIT_BYTES);
  }

  data(chunk: Buffer): void {
    if (this.phase !== 'responding') return;
    this.bytesOut += chunk.length;
    // A HEAD answer is finished at its head: whatever body the sidecar still sends is credited and dropped.
    if (this.exchange.finished || this.exchange.write(chunk)) {
      this.armTimer();
      return this.stream?.credit(chunk.length);
    }
    // The client's socket is full: no credit (and no timeout: the client is the slow one) until it drains.
    this.owed += chunk.length;
    clearTimeout(this.timer);
    this.exchange.onDrained(() => this.drained());
  }

  end(): void {
    if (this.phase !== 'responding') return;
    this.exchange.end();
    this.finish();
  }

  fail(failure: RelayFailure): void {
    if (this.phase === 'relaying' && failure === 'gone' && this.unconfirmed !== undefined) return this.retry();
    if (this.phase === 'relaying') return this.refuse(errorReply(failure === 'gone' ? 'tunnel_disconnected' : failure, FAILURE_MESSAGES[failure === 'gone' ? 'tunnel_disconnected' : failure]));
    if (this.phase !== 'responding') return;
    this.exchange.abort();
    this.finish();
  }

  private drained(): void {
    if (this.phase !== 'responding' || this.owed === 0) return;
    const owed = this.owed;
    this.owed = 0;
    this.armTimer();
    this.stream?.credit(owed);
  }

  /** The sidecar the route named was not there: the next one gets the request, body and all. */
  private retry(): void {
    if (this.target !== undefined) this.deps.directory.ended(this.target);
    this.deps.directory.forget(this.pathId);
    const resend = this.unconfirmed ?? [];
    this.queued = [...resend, ...this.queued];
    this.queuedBytes += resend.reduce((sum, piece) => sum + piece.length, 0);
    this.unconfirmed = [];
    this.bodyCreditLeft = WINDOW_BYTES;
    this.bodyEnded = false;
    this.stream = undefined;
    this.target = undefined;
    this.phase = 'routing';
    clearTimeout(this.timer);
    void this.route();
  }

  // ── endings ────────────────────────────────────────────────────────────

  private armTimer(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.timedOut(), this.deps.config.REQUEST_TIMEOUT_MS);
  }

  private timedOut(): void {
    this.stream?.cancel();
    if (this.phase === 'relaying') return this.refuse(errorReply('tunnel_timeout', FAILURE_MESSAGES.tunnel_timeout));
    this.fail('tunnel_timeout');
  }

  private clientGone(): void {
    if (this.phase === 'done') return;
    this.stream?.cancel();
    this.status = 499; // nginx's "client closed request", for the audit record; counted as `aborted`
    this.finish();
  }

  /** Answers the public client with an error (nothing was started). */
  private refuse(reply: HttpReply): void {
    if (this.phase === 'done') return;
    this.status = reply.status;
    this.exchange.reply(reply);
    this.finish();
  }

  private finish(): void {
    if (this.phase === 'done') return;
    this.phase = 'done';
    this.deps.activity.requests--;
    clearTimeout(this.timer);
    this.queued = [];
    this.unconfirmed = undefined;
    if (this.target !== undefined) this.deps.directory.ended(this.target);
    const seconds = (performance.now() - this.began) / 1000;
    const statusClass = this.status === 499 ? 'aborted' : `${Math.floor(this.status / 100)}xx`;
    this.deps.metrics.relayRequests.inc({ status: statusClass });
    this.deps.metrics.relayDuration.observe(seconds);
    if (this.pathId !== '')
      audit(this.deps.logger, 'tunnel_request', {
        path_id: this.pathId,
        method: this.head?.method ?? this.exchange.request.method.toUpperCase().slice(0, 16),
        status: this.status,
        bytes_in: this.bodyRead,
        bytes_out: this.bytesOut,
        duration_ms: Math.round(seconds * 1000),
        user: this.user,
      });
  }
}
