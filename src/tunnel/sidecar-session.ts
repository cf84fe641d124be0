// One tunnel sidecar on /telephone/websocket (SPEC §5, TUNNEL-PROTOCOL.md):
// a Vera Telephone client or `switchboard tunnel`, serving one path_id.
//
//   connected ──phx_join──► joining ──registry──► joined ──drain──► draining ──► closed
//                                                    └────────(close, heartbeat timeout)───┘
//
// The session answers the channel protocol (join on the token's path_id only,
// channel and `phoenix` heartbeats, token refresh) and carries the requests
// relayed to it (sidecar-request.ts) and the public WebSockets relayed through
// it (sidecar-websockets.ts). It gets requests only once the registry has it,
// and a socket that closes fails what it carries at once: 502 for requests,
// 1001 for WebSockets.
import type { Claims } from '../auth/claims';
import type { TokenSigner } from '../auth/token-signer';
import type { Config } from '../config/load';
import { CLOSE, type Close, type SidecarReplyError } from '../errors/codes';
import type { Logger } from '../log/logger';
import type { Metrics } from '../metrics/metrics';
import { decodeBinaryChunk, decodeStreamEvent, encodeBinaryChunk, STREAM_EVENTS, streamEventPayload, type ChunkEvent } from '../protocol/tunnel-stream-frames';
import {
  channelTopic,
  decodeProxyResponse,
  decodeTunnelFrame,
  encodeJoinReply,
  encodeProxyRequest,
  encodePush,
  encodeReply,
  heartbeatTs,
  requestedExtensions,
  type Extension,
  type ProxyRequest,
  type TunnelFrame,
} from '../protocol/tunnel-frames';
import { randomId } from '../util/random-id';
import type { TunnelDirectory } from './directory';
import type { RelayHead, RequestStream, ResponseSink, WsCheckResult, WsHead, WsSink, WsStream } from './exchange';
import { SidecarRequest, type SidecarChannel } from './sidecar-request';
import { SidecarWebSockets, WS_EVENTS } from './sidecar-websockets';
import type { ByteConnection } from '../transport/connection';
import type { WsHandler } from '../transport/http-types';
import type { Drainable } from '../session/drain';

/** A verified tunnel token's claims: the path it serves is known. */
export type TunnelClaims = Claims & { pathId: string };

export interface SidecarDeps {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  /** Mints refreshed tokens; undefined when the node has no signing key (refresh_unavailable). */
  signer: TokenSigner | undefined;
  /** This node's sidecar sockets (drain closes them). */
  sidecars: Set<SidecarSession>;
  /** Where joined sidecars are published and requests find them. */
  directory: TunnelDirectory;
  /** Other nodes may exist (a Redis bus): a draining sidecar can hand over to one of them. */
  handover: boolean;
}

const utf8 = new TextDecoder('utf-8');
/** How long a drained sidecar's socket is kept for its replacement to join on another node, at most. */
/** The payload of an error reply on the channel; the reasons are catalogued in errors/codes.ts (docs/errors.md). */
const replyError = (reason: SidecarReplyError) => ({ reason });

const HANDOVER_GRACE_MS = 10_000;
const HANDOVER_POLL_MS = 100;
/** The extensions this node grants (docs/tunnel-extensions.md), each only with the one it builds on. */
const GRANTED: readonly Extension[] = ['binary_body', 'stream', 'binary_frames'];
const BUILDS_ON: Partial<Record<Extension, Extension>> = { stream: 'binary_body', binary_frames: 'stream' };

/** Of the extensions a join asks for, those granted: known here, and asked together with what each builds on. */
function grantedOf(asked: readonly Extension[]): Extension[] {
  const granted = (e: Extension): boolean => GRANTED.includes(e) && asked.includes(e) && (BUILDS_ON[e] === undefined || granted(BUILDS_ON[e]));
  return asked.filter(granted);
}

export class SidecarSession implements WsHandler, Drainable, SidecarChannel {
  private phase: 'connected' | 'joining' | 'joined' | 'draining' | 'closed' = 'connected';
  readonly id = randomId(12);
  readonly key: string;
  /** The join's join_ref: every server push carries it (Phoenix V2). */
  private currentJoinRef = '1';
  private extensions: readonly Extension[] = [];
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly requests = new Map<string, SidecarRequest>();
  private readonly websockets = new SidecarWebSockets(this);
  /** A drain's close, waiting for the requests in flight to finish. */
  private closeWhenIdle: Close | undefined;
  /** False while a drained sidecar's replacement has not joined elsewhere yet: its socket stays. */
  private handedOver = true;
  private readonly topic: string;
  private readonly log: Logger;
  readonly maxResponseBytes: number;
  readonly streamThresholdBytes: number;

  constructor(
    private readonly deps: SidecarDeps,
    private readonly conn: ByteConnection,
    private readonly claims: TunnelClaims,
  ) {
    this.topic = channelTopic(claims.pathId);
    this.log = deps.logger.child({ tunnel: claims.pathId });
    this.key = `${deps.config.nodeId}/${this.id}`;
    this.maxResponseBytes = deps.config.MAX_RESPONSE_BYTES;
    this.streamThresholdBytes = deps.config.STREAM_THRESHOLD_BYTES;
  }

  get pathId(): string {
    return this.claims.pathId;
  }

  get isJoined(): boolean {
    return this.phase === 'joined' || this.phase === 'draining';
  }

  get isDraining(): boolean {
    return this.phase === 'draining';
  }

  get isClosed(): boolean {
    return this.phase === 'closed';
  }

  get binaryBody(): boolean {
    return this.extensions.includes('binary_body');
  }

  get stream(): boolean {
    return this.extensions.includes('stream');
  }

  private get binaryFrames(): boolean {
    return this.extensions.includes('binary_frames');
  }

  open(): void {
    this.deps.sidecars.add(this);
    this.armHeartbeat();
  }

  // ── requests (TunnelTarget, SidecarChannel) ────────────────────────────

  /** Sends a public request to this sidecar. */
  request(head: RelayHead, sink: ResponseSink): RequestStream {
    const request = new SidecarRequest(this, head, sink);
    if (this.phase === 'closed') {
      request.onSidecarGone();
      return request;
    }
    this.requests.set(head.id, request);
    return request;
  }

  /** ws_check to this sidecar (fails at once when its socket is gone). */
  checkWebSocket(head: WsHead): Promise<WsCheckResult> {
    if (this.phase === 'closed') return Promise.resolve({ ok: false, failure: 'gone' });
    return this.websockets.check(head);
  }

  connectWebSocket(head: WsHead, sink: WsSink): WsStream {
    const stream = this.websockets.connect(head, sink);
    if (this.phase === 'closed') this.websockets.gone();
    return stream;
  }

  /** The join_ref every push carries. */
  get joinRef(): string {
    return this.currentJoinRef;
  }

  send(frame: string): void {
    this.conn.send(frame);
  }

  sendProxyRequest(request: ProxyRequest): void {
    this.conn.send(encodeProxyRequest(this.currentJoinRef, this.claims.pathId, request));
  }

  push(event: string, payload: object): void {
    this.conn.send(encodePush(this.currentJoinRef, this.claims.pathId, event, payload));
  }

  pushChunk(chunk: ChunkEvent): void {
    if (this.binaryFrames) this.conn.sendBytes(encodeBinaryChunk(chunk), true);
    else this.push(chunk.event, streamEventPayload(chunk));
  }

  finished(request: SidecarRequest): void {
    this.requests.delete(request.id);
    if (this.closeWhenIdle !== undefined && this.requests.size === 0 && this.handedOver) this.conn.close(this.closeWhenIdle);
  }

  // ── the socket ─────────────────────────────────────────────────────────

  onMessage(data: ArrayBuffer, isBinary: boolean): void {
    if (isBinary) return this.onBinary(data);
    const frame = decodeTunnelFrame(utf8.decode(data));
    if (frame === undefined) return void this.log.debug('ignored a frame that is not a Phoenix V2 message');
    if (frame.topic === 'phoenix') {
      // The socket-level heartbeat: answered, and it keeps the socket alive like a channel heartbeat.
      if (frame.event === 'heartbeat') this.heartbeat(frame);
      return;
    }
    switch (frame.event) {
      case 'phx_join':
        return this.join(frame);
      case 'heartbeat':
        return this.heartbeat(frame);
      case 'refresh_token':
        return this.refresh(frame);
      case 'proxy_res': {
        const response = decodeProxyResponse(frame.payload);
        return response === undefined ? undefined : this.requests.get(response.requestId)?.onResponse(response);
      }
      default:
        if (WS_EVENTS.has(frame.event)) return this.websockets.onEvent(frame.event, frame.payload);
        if (STREAM_EVENTS.has(frame.event)) {
          const event = decodeStreamEvent(frame.event, frame.payload);
          return event === undefined ? undefined : this.requests.get(event.requestId)?.onStreamEvent(event);
        }
        return void this.log.debug({ event: frame.event.slice(0, 32) }, 'ignored a sidecar event this node does not handle');
    }
  }

  /** A chunk in a binary message (`binary_frames`); uWS lends `data` for this call only, so the data is copied. */
  private onBinary(data: ArrayBuffer): void {
    const chunk = this.binaryFrames ? decodeBinaryChunk(new Uint8Array(data)) : undefined;
    if (chunk === undefined) return void this.log.debug('ignored a binary message that is not a chunk');
    this.requests.get(chunk.requestId)?.onStreamEvent({ ...chunk, data: Buffer.from(chunk.data) });
  }

  onClose(code: number): void {
    if (this.phase === 'closed') return;
    // A sidecar told to drain closes the old socket itself, with 1000, once nothing is in flight on
    // it, and starts nothing that reaches it after that (docs/tunnel-extensions.md, Drain): what
    // this node sent it and has no answer for crossed that close unseen, and may go elsewhere.
    // The Telephone client is never told (it gets no `draining`), so its close promises nothing.
    const handedOver = this.phase === 'draining' && this.extensions.length > 0 && code === 1000;
    if (this.isJoined) {
      this.deps.metrics.tunnelsActive.dec();
      this.deps.directory.remove(this);
    }
    this.phase = 'closed';
    clearTimeout(this.heartbeatTimer);
    this.deps.sidecars.delete(this);
    // Whatever was in flight fails now (502 tunnel_disconnected), never hangs.
    for (const request of [...this.requests.values()]) request.onSidecarGone(handedOver);
    this.requests.clear();
    this.websockets.gone(handedOver);
  }

  /**
   * Drain: a sidecar that speaks the extensions is told, and connects elsewhere before this socket
   * goes (make-before-break); this node then sends it new requests only when no other sidecar
   * serves the path. The Telephone protocol has no such event: that client reconnects once its
   * socket closes.
   */
  notifyDraining(): void {
    if (this.phase !== 'joined') return;
    this.phase = 'draining';
    if (this.extensions.length > 0) this.push('draining', { reconnect_after_ms: 0 });
  }

  /**
   * A drain's close (1012) never leaves a moment without a sidecar: the socket closes once nothing
   * is in flight on it and — for a sidecar told to drain, in a cluster — once its replacement has
   * joined on another node (the registry lists it), or HANDOVER_GRACE_MS passed. A Telephone
   * sidecar, which cannot be told, reconnects when this socket closes. Any other close is at once;
   * main closes what is left when SHUTDOWN_TIMEOUT_MS is up.
   */
  close(close: Close): void {
    if (this.phase === 'closed') return;
    if (close.code === CLOSE.draining.code) {
      if (this.phase === 'draining' && this.extensions.length > 0 && this.deps.handover && this.handedOver) void this.awaitHandover();
      this.closeWhenIdle = close;
      if (this.requests.size > 0 || !this.handedOver) return;
    }
    this.conn.close(close);
  }

  private async awaitHandover(): Promise<void> {
    this.handedOver = false;
    const until = performance.now() + HANDOVER_GRACE_MS;
    while (this.phase !== 'closed' && performance.now() < until && !(await this.deps.directory.servedElsewhere(this)))
      await new Promise((resolve) => setTimeout(resolve, HANDOVER_POLL_MS));
    this.handedOver = true;
    if (this.phase !== 'closed' && this.closeWhenIdle !== undefined && this.requests.size === 0) this.conn.close(this.closeWhenIdle);
  }

  private join(frame: TunnelFrame): void {
    if (frame.topic !== this.topic)
      return this.conn.send(encodeReply(frame.joinRef, frame.ref, frame.topic, 'error', replyError('path_id_mismatch')));
    // A Telephone join ({}) gets exactly the baseline reply; a join that asks gets the list of those granted.
    const asked = Array.isArray(frame.payload.extensions) ? requestedExtensions(frame.payload) : undefined;
    const granted = asked === undefined ? undefined : grantedOf(asked);
    const reply = () => this.conn.send(encodeJoinReply(frame.ref, this.claims.pathId, this.expiresIn(), granted));
    if (this.phase !== 'connected') return reply(); // a repeated join: same answer, nothing new to register
    this.phase = 'joining';
    this.currentJoinRef = frame.joinRef ?? frame.ref ?? '1';
    this.extensions = granted ?? [];
    this.deps.directory.add(this).then(
      () => {
        // The socket may have closed while the registry wrote: then the route goes again at once.
        if (this.phase !== 'joining') return this.deps.directory.remove(this);
        this.phase = 'joined';
        this.deps.metrics.tunnelsActive.inc();
        reply();
      },
      (error: unknown) => {
        if (this.phase !== 'joining') return;
        this.log.warn({ err: error }, 'sidecar join failed: the tunnel registry is unavailable');
        this.phase = 'connected';
        this.conn.send(encodeReply(frame.joinRef, frame.ref, frame.topic, 'error', replyError('unavailable')));
      },
    );
  }

  private heartbeat(frame: TunnelFrame): void {
    this.armHeartbeat();
    if (frame.topic === 'phoenix') return this.conn.send(encodeReply(frame.joinRef, frame.ref, 'phoenix', 'ok', {}));
    const ts = heartbeatTs(frame.payload) ?? Math.floor(Date.now() / 1000);
    this.conn.send(encodePush(this.isJoined ? this.joinRef : (frame.joinRef ?? '1'), this.claims.pathId, 'heartbeat_ack', { ts }));
  }

  /** A new token at half-life (TUNNEL-PROTOCOL.md §5): same sub, path_id and roles; new jti, iat and exp. */
  private refresh(frame: TunnelFrame): void {
    const { signer, config } = this.deps;
    const joinRef = this.isJoined ? this.joinRef : frame.joinRef;
    if (signer === undefined) return this.conn.send(encodeReply(joinRef, frame.ref, this.topic, 'error', replyError('refresh_unavailable')));
    const token = signer.refreshTunnel(this.claims, config.TUNNEL_TOKEN_TTL_S);
    this.conn.send(encodeReply(joinRef, frame.ref, this.topic, 'ok', { token, expires_in: config.TUNNEL_TOKEN_TTL_S }));
  }

  /** Seconds the sidecar's token has left (its configured lifetime when it has no `exp`). */
  private expiresIn(): number {
    const exp = this.claims.exp;
    return exp === undefined ? this.deps.config.TUNNEL_TOKEN_TTL_S : Math.max(0, exp - Math.floor(Date.now() / 1000));
  }

  /** No heartbeat for TUNNEL_HEARTBEAT_TIMEOUT_MS: the whole socket closes (the client reconnects only then). */
  private armHeartbeat(): void {
    clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = setTimeout(() => {
      this.log.info('sidecar heartbeat timed out; closing its socket');
      this.close(CLOSE.heartbeat_timeout);
    }, this.deps.config.TUNNEL_HEARTBEAT_TIMEOUT_MS);
    this.heartbeatTimer.unref();
  }
}
