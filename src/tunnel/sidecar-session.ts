// One tunnel sidecar on /telephone/websocket (SPEC §5, TUNNEL-PROTOCOL.md):
// a Vera Telephone client or `switchboard tunnel`, serving one path_id.
//
//   connected ──phx_join(telephone:<path_id>)──► joined ──(close, heartbeat timeout)──► closed
//
// This step answers the channel protocol: join (the token's path_id only),
// channel and `phoenix` heartbeats, token refresh at half-life, and closes the
// whole socket when heartbeats stop (the Telephone client reconnects only when
// its socket closes). Relaying requests to joined sidecars comes with the
// tunnel registry.
import type { Claims } from '../auth/claims';
import type { TokenSigner } from '../auth/token-signer';
import type { Config } from '../config/load';
import { CLOSE, type Close } from '../errors/codes';
import type { Logger } from '../log/logger';
import type { Metrics } from '../metrics/metrics';
import {
  channelTopic,
  decodeTunnelFrame,
  encodeJoinReply,
  encodePush,
  encodeReply,
  heartbeatTs,
  requestedExtensions,
  type Extension,
  type TunnelFrame,
} from '../protocol/tunnel-frames';
import type { Connection } from '../transport/connection';
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
  /** This node's sidecar sockets (health's `tunnels` counts the joined ones; drain closes them). */
  sidecars: Set<SidecarSession>;
}

const utf8 = new TextDecoder('utf-8');
/** Extensions this node grants: none until the relay implements binary bodies and streaming. */
const GRANTED: readonly Extension[] = [];

export class SidecarSession implements WsHandler, Drainable {
  private phase: 'connected' | 'joined' | 'closed' = 'connected';
  /** The join's join_ref: every server push carries it (Phoenix V2). */
  private joinRef: string | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly topic: string;
  private readonly log: Logger;

  constructor(
    private readonly deps: SidecarDeps,
    private readonly conn: Connection,
    private readonly claims: TunnelClaims,
  ) {
    this.topic = channelTopic(claims.pathId);
    this.log = deps.logger.child({ tunnel: claims.pathId });
  }

  get pathId(): string {
    return this.claims.pathId;
  }

  get isJoined(): boolean {
    return this.phase === 'joined';
  }

  get isClosed(): boolean {
    return this.phase === 'closed';
  }

  open(): void {
    this.deps.sidecars.add(this);
    this.armHeartbeat();
  }

  onMessage(data: ArrayBuffer, isBinary: boolean): void {
    const frame = isBinary ? undefined : decodeTunnelFrame(utf8.decode(data));
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
      default:
        return void this.log.debug({ event: frame.event.slice(0, 32) }, 'ignored a sidecar event this node does not handle');
    }
  }

  onClose(): void {
    if (this.phase === 'closed') return;
    if (this.phase === 'joined') this.deps.metrics.tunnelsActive.dec();
    this.phase = 'closed';
    clearTimeout(this.heartbeatTimer);
    this.deps.sidecars.delete(this);
  }

  notifyDraining(): void {
    // The Telephone protocol has no draining event: the sidecar reconnects when its socket closes.
  }

  close(close: Close): void {
    if (this.phase !== 'closed') this.conn.close(close);
  }

  private join(frame: TunnelFrame): void {
    if (frame.topic !== this.topic)
      return this.conn.send(encodeReply(frame.joinRef, frame.ref, frame.topic, 'error', { reason: 'path_id_mismatch' }));
    // A Telephone join ({}) gets exactly the baseline reply; a join that asks gets the list of those granted.
    const extensions = Array.isArray(frame.payload.extensions) ? requestedExtensions(frame.payload).filter((e) => GRANTED.includes(e)) : undefined;
    if (this.phase === 'connected') {
      this.phase = 'joined';
      this.deps.metrics.tunnelsActive.inc();
    }
    this.joinRef = frame.joinRef ?? frame.ref ?? '1';
    this.conn.send(encodeJoinReply(frame.ref, this.claims.pathId, this.expiresIn(), extensions));
  }

  private heartbeat(frame: TunnelFrame): void {
    this.armHeartbeat();
    if (frame.topic === 'phoenix') return this.conn.send(encodeReply(frame.joinRef, frame.ref, 'phoenix', 'ok', {}));
    const ts = heartbeatTs(frame.payload) ?? Math.floor(Date.now() / 1000);
    this.conn.send(encodePush(this.joinRef ?? frame.joinRef ?? '1', this.claims.pathId, 'heartbeat_ack', { ts }));
  }

  /** A new token at half-life (TUNNEL-PROTOCOL.md §5): same sub, path_id and roles; new jti, iat and exp. */
  private refresh(frame: TunnelFrame): void {
    const { signer, config } = this.deps;
    const joinRef = this.joinRef ?? frame.joinRef;
    if (signer === undefined) return this.conn.send(encodeReply(joinRef, frame.ref, this.topic, 'error', { reason: 'refresh_unavailable' }));
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
