// The WebSocket relay of one tunnel socket (TUNNEL-PROTOCOL.md §7): each
// public WebSocket is a `ws` client connection to the back end.
//
//   ws_check   ──► probe connection ──► ws_check_result {supported, protocol}
//   ws_connect ──► back-end socket  ──► ws_connected {protocol} | ws_error
//   ws_frame ◄──► frames (text, binary, ping, pong; base64 on the tunnel)
//   ws_close (public client closed) ──► close the back end, say nothing more
//   back end closed ──► ws_closed {code, reason}
//
// ws_check opens a real, short-lived probe connection (closed at once with
// 1000): only the back end knows whether it serves the path and which of the
// offered subprotocols it picks, and the public client is upgraded with that
// protocol before ws_connect. The cost is one extra handshake per public
// WebSocket (docs/tunnel-sidecar.md).
//
// Pings are relayed, not answered here (autoPong off): the public client's
// pong reaches the back end, and the back end's pong reaches the client.
import WebSocket from 'ws';
import type { Logger } from '../log/logger';
import type { WsOpcode } from '../protocol/tunnel-frames';
import { wsCheckResultPayload, wsClosedPayload, wsConnectedPayload, wsErrorPayload, wsFramePayload, type ServerPush, type WsOpenPush } from '../protocol/tunnel-sidecar-frames';
import type { ChannelSender } from './channel';
import { backendWsHeaders, offeredProtocols } from './headers';

export interface WsRelayDeps {
  /** The back end's ws:// or wss:// base URL (the --to URL with its scheme mapped). */
  backendUrl: URL;
  channel: ChannelSender;
  logger: Logger;
  /** Below the server's 5 s wait for ws_check_result and ws_connected, so the answer is ours, not its timeout. */
  handshakeTimeoutMs: number;
  /** A relayed socket ended: a draining tunnel socket may now be idle. */
  onSettled(): void;
}

interface Relayed {
  readonly ws: WebSocket;
  /** Frames that came before the back end's open (the server sends none before ws_connected; kept in order if it does). */
  readonly early: { opcode: WsOpcode; data: Buffer }[];
  /** The public side closed first (ws_close, or the tunnel went away): no ws_closed is owed. */
  closedByPublic: boolean;
}

type WsPush = Extract<ServerPush, { event: 'ws_check' | 'ws_connect' | 'ws_frame' | 'ws_close' }>;

export class WsRelay {
  private readonly sockets = new Map<string, Relayed>();
  private readonly probes = new Set<WebSocket>();

  constructor(private readonly deps: WsRelayDeps) {}

  get open(): number {
    return this.sockets.size;
  }

  onPush(push: WsPush): void {
    switch (push.event) {
      case 'ws_check':
        return this.check(push.open);
      case 'ws_connect':
        return this.connect(push.open);
      case 'ws_frame': {
        const relayed = this.sockets.get(push.connectionId);
        if (relayed === undefined) return;
        if (relayed.ws.readyState === WebSocket.CONNECTING) relayed.early.push({ opcode: push.opcode, data: push.data });
        else forward(relayed.ws, push.opcode, push.data);
        return;
      }
      case 'ws_close': {
        const relayed = this.sockets.get(push.connectionId);
        if (relayed === undefined) return;
        relayed.closedByPublic = true;
        closeBackend(relayed.ws, push.code, push.reason);
        return;
      }
    }
  }

  /** The tunnel socket is gone: the server closed these public sockets with 1001; close the back ends alike. */
  closeAll(): void {
    for (const probe of this.probes) probe.terminate();
    for (const relayed of this.sockets.values()) {
      relayed.closedByPublic = true;
      closeBackend(relayed.ws, 1001, 'tunnel closed');
    }
  }

  private dial(open: WsOpenPush): WebSocket {
    const url = new URL(this.deps.backendUrl.href);
    url.pathname = `${url.pathname.replace(/\/+$/, '')}${open.path}`;
    url.search = open.queryString;
    return new WebSocket(url, offeredProtocols(open.headers), {
      headers: backendWsHeaders(open.headers),
      handshakeTimeout: this.deps.handshakeTimeoutMs,
      autoPong: false,
    });
  }

  private check(open: WsOpenPush): void {
    const probe = this.dial(open);
    this.probes.add(probe);
    let answered = false;
    const answer = (result: { supported: boolean; protocol?: string; reason?: string }) => {
      if (answered) return;
      answered = true;
      this.deps.channel.send('ws_check_result', wsCheckResultPayload(open.id, result));
    };
    probe.on('open', () => {
      answer({ supported: true, protocol: probe.protocol });
      probe.close(1000, 'probe');
    });
    probe.on('unexpected-response', (req, res) => {
      res.resume();
      req.destroy();
      answer({ supported: false, reason: `backend_status_${res.statusCode ?? 0}` });
      probe.terminate();
    });
    probe.on('error', (error) => answer({ supported: false, reason: reasonOf(error) }));
    probe.on('close', () => {
      this.probes.delete(probe);
      answer({ supported: false, reason: 'backend_closed' });
    });
  }

  private connect(open: WsOpenPush): void {
    const { channel } = this.deps;
    if (this.sockets.has(open.id)) return void this.deps.logger.warn({ connection_id: open.id }, 'ignored a ws_connect with a connection_id in use');
    const ws = this.dial(open);
    const relayed: Relayed = { ws, early: [], closedByPublic: false };
    this.sockets.set(open.id, relayed);
    const log = this.deps.logger.child({ connection_id: open.id, path: open.path.slice(0, 200) });
    let opened = false;
    let failed = false;
    const fail = (reason: string) => {
      if (opened || failed || relayed.closedByPublic) return;
      failed = true;
      log.info({ reason }, 'back-end WebSocket failed to open');
      channel.send('ws_error', wsErrorPayload(open.id, reason));
    };
    ws.on('open', () => {
      opened = true;
      if (relayed.closedByPublic) return; // ws_close came while connecting: closeBackend already ends it
      channel.send('ws_connected', wsConnectedPayload(open.id, ws.protocol));
      for (const frame of relayed.early.splice(0)) forward(ws, frame.opcode, frame.data);
    });
    ws.on('unexpected-response', (req, res) => {
      res.resume();
      req.destroy();
      fail(`backend_status_${res.statusCode ?? 0}`);
      ws.terminate();
    });
    ws.on('error', (error) => (opened ? log.debug({ err: error.message }, 'back-end WebSocket error') : fail(reasonOf(error))));
    ws.on('message', (data: Buffer, isBinary: boolean) => channel.send('ws_frame', wsFramePayload(open.id, isBinary ? 'binary' : 'text', data)));
    ws.on('ping', (data: Buffer) => channel.send('ws_frame', wsFramePayload(open.id, 'ping', data)));
    ws.on('pong', (data: Buffer) => channel.send('ws_frame', wsFramePayload(open.id, 'pong', data)));
    ws.on('close', (code: number, reason: Buffer) => {
      this.sockets.delete(open.id);
      if (opened && !relayed.closedByPublic) {
        const [sent, text] = publicClose(code, reason.toString('utf8'));
        channel.send('ws_closed', wsClosedPayload(open.id, sent, text));
      } else if (!opened) fail('backend_closed');
      this.deps.onSettled();
    });
  }
}

function forward(ws: WebSocket, opcode: WsOpcode, data: Buffer): void {
  if (ws.readyState !== WebSocket.OPEN) return;
  if (opcode === 'ping') ws.ping(data);
  else if (opcode === 'pong') ws.pong(data);
  else ws.send(data, { binary: opcode === 'binary' });
}

/**
 * Closes the back end with the public client's code. 1005 (no code) closes without one; codes a
 * close frame may not carry (1006 abnormal, 1015, out of range) become 1001: the public client went away.
 */
function closeBackend(ws: WebSocket, code: number, reason: string): void {
  if (ws.readyState === WebSocket.CONNECTING) return ws.terminate();
  if (ws.readyState !== WebSocket.OPEN) return;
  if (code === 1005) return ws.close();
  ws.close(sendableCode(code) ? code : 1001, truncateReason(reason));
}

/**
 * The back end's close as the server should pass it on: 1005 (it sent no code) → 1000; 1006 (the
 * connection dropped without a close frame) → 1011 "backend connection lost", since neither
 * can be sent in a close frame.
 */
export function publicClose(code: number, reason: string): [number, string] {
  if (code === 1005) return [1000, reason];
  if (!sendableCode(code)) return [1011, 'backend connection lost'];
  return [code, reason];
}

/** RFC 6455 §7.4: the codes an endpoint may put in a close frame. */
export function sendableCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

/** A close reason fits in 123 bytes of UTF-8; cut at a character boundary. */
export function truncateReason(reason: string): string {
  if (Buffer.byteLength(reason) <= 123) return reason;
  let out = '';
  for (const char of reason) {
    if (Buffer.byteLength(out + char) > 123) break;
    out += char;
  }
  return out;
}

function reasonOf(error: Error): string {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'ECONNRESET' ? 'backend_unreachable' : 'backend_error';
}
