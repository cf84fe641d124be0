// A public WebSocket to /call/<path_id>/<rest> (or a tunnel host), relayed
// to the back end through a sidecar on this node or another
// (TUNNEL-PROTOCOL.md §7).
//
//   upgrade: route ──ws_check──► (unsupported 502, no answer 504, no tunnel 503) ──► 101
//   open:    connecting ──ws_connected──► open ──(either side closes)──► closed
//                 │ ws_error / 5 s: 1014     │ sidecar gone: 1001
//                 └ frames buffered (100 frames / 1 MiB, else 1009)
//
// The pre-flight runs before the upgrade is answered, so a back end that
// takes no WebSocket there is an HTTP error the client can read, and the
// subprotocol the back end chose goes into the 101. The connection itself
// goes to the sidecar that answered the pre-flight.
import { randomUUID } from 'node:crypto';
import { CLOSE, type Close } from '../errors/codes';
import type { Drainable } from '../session/drain';
import { audit } from '../log/audit';
import type { ByteConnection } from '../transport/connection';
import { errorReply, type UpgradeDecision, type WsEndpoint, type WsHandler } from '../transport/http-types';
import { whenReady } from '../util/maybe-promise';
import type { TunnelDirectory } from './directory';
import { WS_SIDECAR_TIMEOUT_MS, type TunnelTarget, type WsFailure, type WsHead, type WsOpcode, type WsSink, type WsStream } from './exchange';
import { withoutConsumed } from './public-access';
import type { PublicAccessDecision } from './public-access';
import type { PublicHttpDeps } from './public-http';
import { relayedRequestHeaders, tunnelTarget } from './public-request';

/** The headers a relayed WebSocket's pre-flight and connect carry (TUNNEL-PROTOCOL.md §7). */
const FORWARDED_HEADERS = ['sec-websocket-protocol', 'origin', 'cookie', 'authorization', 'x-forwarded-for', 'x-real-ip', 'x-request-id'] as const;
/** Frames from the public client before the back end connected: at most this many, and this many bytes. */
const EARLY_FRAMES = 100;
const EARLY_BYTES = 1024 * 1024;
/** The largest frame a relayed public WebSocket takes (it crosses the sidecar's socket as base64). */
const MAX_FRAME_BYTES = 1024 * 1024;

export type PublicWebSocketDeps = Omit<PublicHttpDeps, 'directory'> & {
  directory: TunnelDirectory;
  isDraining: () => boolean;
  /** This node's relayed public WebSockets: a drain closes them (1012) like app sockets, and the clients reconnect elsewhere. */
  sockets: Set<Drainable>;
};

interface Accepted {
  pathId: string;
  target: TunnelTarget;
  head: Omit<WsHead, 'id'>;
  user: string | undefined;
}

export function publicWebSocketEndpoint(deps: PublicWebSocketDeps): WsEndpoint<Accepted> {
  const { config } = deps;
  return {
    pattern: '/*',
    maxPayloadBytes: MAX_FRAME_BYTES,
    idleTimeoutS: config.IDLE_TIMEOUT_S,
    maxBufferedBytes: config.MAX_BUFFERED_BYTES,
    upgradeHeaders: [...FORWARDED_HEADERS, 'host', 'x-forwarded-proto'],

    upgrade(request) {
      const address = tunnelTarget(request.path, request.headers.host, config.TUNNEL_DOMAIN);
      if (!address.ok) return { accept: false, reply: address.status === 404 ? errorReply('not_found', 'no such endpoint') : errorReply('bad_request', address.message) };
      if (deps.isDraining()) return { accept: false, reply: errorReply('draining', 'this node is shutting down; connect to another node') };
      const peer = deps.forwarding(request);
      const all = relayedRequestHeaders(request.headers, { ...peer, host: request.headers.host });
      const decision = deps.access(request, address.target.pathId);
      return new Promise<UpgradeDecision<Accepted>>((resolve, reject) =>
        whenReady(
          decision,
          (decided) => resolve(preflight(deps, address.target.pathId, address.target.path, forwardedHeaders(all), decided)),
          reject,
        ),
      );
    },

    open(connection, accepted) {
      return new PublicWebSocket(deps, connection, accepted);
    },

    abandoned(accepted) {
      deps.directory.ended(accepted.target);
    },
  };
}

/** Finds a sidecar and asks it whether the back end takes the WebSocket; the upgrade's answer. */
async function preflight(
  deps: PublicWebSocketDeps,
  pathId: string,
  path: string,
  headers: Record<string, string>,
  decided: PublicAccessDecision,
): Promise<UpgradeDecision<Accepted>> {
  if (!decided.ok) return { accept: false, reply: decided.reply };
  const head = { path, queryString: decided.query, headers: withoutConsumed(headers, decided) };
  const tried = new Set<string>();
  for (;;) {
    const target = await deps.directory.pick(pathId, tried);
    if (target === undefined) return { accept: false, reply: errorReply('no_tunnel', 'no tunnel serves this path') };
    tried.add(target.key);
    const checked = await target.checkWebSocket({ id: randomUUID(), ...head });
    // The sidecar counts as busy with this WebSocket until it closes (PublicWebSocket.onClose).
    if (!checked.ok || !checked.supported) deps.directory.ended(target);
    if (!checked.ok && checked.failure === 'gone') {
      deps.directory.forget(pathId);
      continue;
    }
    if (!checked.ok)
      return { accept: false, reply: checked.failure === 'tunnel_timeout' ? errorReply('tunnel_timeout', 'the tunnel did not answer the WebSocket pre-flight in time') : errorReply('tunnel_disconnected', 'the tunnel disconnected') };
    if (!checked.supported) return { accept: false, reply: errorReply('tunnel_error', `the back end takes no WebSocket here${checked.reason === undefined ? '' : `: ${checked.reason.slice(0, 200)}`}`) };
    return { accept: true, context: { pathId, target, head, user: decided.user }, protocol: checked.protocol ?? '' };
  }
}

function forwardedHeaders(all: Readonly<Record<string, string>>): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  for (const name of FORWARDED_HEADERS) {
    const value = all[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

class PublicWebSocket implements WsHandler, WsSink, Drainable {
  private phase: 'connecting' | 'open' | 'closed' = 'connecting';
  private readonly stream: WsStream;
  private early: { opcode: WsOpcode; data: Buffer }[] = [];
  private earlyBytes = 0;
  private readonly timer: NodeJS.Timeout;
  private framesIn = 0;
  private framesOut = 0;
  private readonly began = performance.now();

  constructor(
    private readonly deps: PublicWebSocketDeps,
    private readonly conn: ByteConnection,
    private readonly accepted: Accepted,
  ) {
    deps.metrics.relayWebSockets.inc();
    deps.sockets.add(this);
    this.timer = setTimeout(() => this.failed('ws_error'), WS_SIDECAR_TIMEOUT_MS);
    this.stream = accepted.target.connectWebSocket({ id: randomUUID(), ...accepted.head }, this);
  }

  /** Drain: the public client is closed (1012) and the back end told the client went away. */
  close(close: Close): void {
    if (!this.conn.closed) this.closeClient(close.code, close.reason);
  }

  get isClosed(): boolean {
    return this.conn.closed;
  }

  notifyDraining(): void {
    // A relayed WebSocket speaks the back end's protocol: there is nothing to tell it but the close.
  }

  // ── the public client ──────────────────────────────────────────────────

  onMessage(data: ArrayBuffer, isBinary: boolean): void {
    this.fromClient(isBinary ? 'binary' : 'text', data);
  }

  onPing(data: ArrayBuffer): void {
    this.fromClient('ping', data);
  }

  onPong(data: ArrayBuffer): void {
    this.fromClient('pong', data);
  }

  /** The socket closed, whoever closed it: the back end is told if it does not know yet, and the relay is accounted once. */
  onClose(code: number, reason: string): void {
    clearTimeout(this.timer);
    if (this.phase !== 'closed') {
      this.phase = 'closed';
      this.stream.close(sendableCode(code), reason);
    }
    this.deps.metrics.relayWebSockets.dec();
    this.deps.sockets.delete(this);
    this.deps.directory.ended(this.accepted.target);
    audit(this.deps.logger, 'tunnel_websocket', {
      path_id: this.accepted.pathId,
      code,
      frames_in: this.framesIn,
      frames_out: this.framesOut,
      duration_ms: Math.round(performance.now() - this.began),
      user: this.accepted.user,
    });
  }

  private fromClient(opcode: WsOpcode, data: ArrayBuffer): void {
    if (this.phase === 'closed') return;
    // Copied: uWS reuses the memory after the callback.
    const copy = Buffer.from(new Uint8Array(data));
    this.framesIn++;
    if (this.phase === 'open') return this.stream.frame(opcode, copy);
    this.early.push({ opcode, data: copy });
    this.earlyBytes += copy.length;
    if (this.early.length > EARLY_FRAMES || this.earlyBytes > EARLY_BYTES) this.closeClient(CLOSE.too_large.code, CLOSE.too_large.reason);
  }

  // ── WsSink: the sidecar side ───────────────────────────────────────────

  connected(): void {
    if (this.phase !== 'connecting') return;
    this.phase = 'open';
    clearTimeout(this.timer);
    const early = this.early;
    this.early = [];
    for (const frame of early) this.stream.frame(frame.opcode, frame.data);
  }

  frame(opcode: WsOpcode, data: Buffer): void {
    if (this.phase !== 'open') return;
    this.framesOut++;
    if (opcode === 'text' || opcode === 'binary') this.conn.sendBytes(data, opcode === 'binary');
    else if (opcode === 'ping') this.conn.ping(data);
    // A pong from the back end answers a ping the client sent; uWS already answered it.
  }

  closed(code: number, reason: string): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.closeClient(sendableCode(code), reason);
  }

  failed(failure: WsFailure): void {
    if (this.phase === 'closed') return;
    const wasConnecting = this.phase === 'connecting';
    this.phase = 'closed';
    this.stream.close(1001, 'going_away');
    // The back end was never reached: 1014; the sidecar went away with the connection open: 1001.
    const close = wasConnecting || failure === 'ws_error' ? CLOSE.bad_gateway : CLOSE.going_away;
    this.closeClient(close.code, close.reason);
  }

  private closeClient(code: number, reason: string): void {
    clearTimeout(this.timer);
    // The reason is cut to what a close frame carries (123 bytes).
    this.conn.close({ code, reason: Buffer.from(reason).subarray(0, 123).toString('utf8').replace(/\uFFFD+$/, '') });
    if (this.phase !== 'closed') {
      this.phase = 'closed';
      this.stream.close(1001, 'going_away');
    }
  }
}

/** A close code that may be sent on in a close frame: 1005 (no code) becomes 1000, 1006 and 1015 (no close frame) 1001. */
function sendableCode(code: number): number {
  if (code === 1005) return 1000;
  if (code === 1006 || code === 1015) return 1001;
  return code >= 1000 && code <= 4999 ? code : 1000;
}
