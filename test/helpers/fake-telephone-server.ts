// A small Phoenix V2 server speaking the sidecar protocol (shared/TUNNEL-
// PROTOCOL.md + docs/tunnel-extensions.md), for testing `switchboard tunnel`
// while the real relay is being built: `ws.WebSocketServer` on port 0, tokens
// checked with jsonwebtoken, frames written with the server's own encoders
// (protocol/tunnel-frames.ts) and read with the server's decoders. It keeps
// its own credit accounting, independent of the sidecar's, and records any
// breach of the window instead of trusting the sidecar.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import jwt from 'jsonwebtoken';
import WebSocket, { WebSocketServer } from 'ws';
import {
  decodeProxyResponse,
  decodeTunnelFrame,
  decodeWsCheckResult,
  decodeWsEvent,
  encodeJoinReply,
  encodeProxyRequest,
  encodePush,
  encodeReply,
  encodeWsClose,
  encodeWsFrame,
  encodeWsOpen,
  heartbeatTs,
  requestedExtensions,
  type Extension,
  type RelayedMethod,
  type TunnelFrame,
  type WsCheckResult,
  type WsEvent,
  type WsOpcode,
} from '../../src/protocol/tunnel-frames';
import { CHUNK_MAX_BYTES, decodeStreamEvent, INITIAL_CREDIT_BYTES, streamEventPayload } from '../../src/protocol/tunnel-stream-frames';
import { eventually } from './eventually';

export const FAKE_SECRET = 'fake-telephone-secret-at-least-32-bytes';

export function tunnelToken(pathId: string, claims: Record<string, unknown> = {}): string {
  const now = Math.floor(Date.now() / 1000);
  return jwt.sign({ sub: `tunnel-${pathId}`, jti: randomUUID(), path_id: pathId, roles: ['tunnel'], iat: now, exp: now + 3600, ...claims }, FAKE_SECRET, { algorithm: 'HS256', noTimestamp: true });
}

export interface FakeOptions {
  /** Extensions granted to a join that asks (none: the relay is not built yet). */
  grant?: readonly Extension[];
  /** Lifetime of refreshed tokens. */
  refreshTtlS?: number;
}

/** A relayed HTTP response as the public client would get it. */
export interface Response {
  status: number;
  headers: [string, string][];
  body: Buffer;
  /** How it came: one proxy_res, or start/chunks/end. */
  form: 'whole' | 'streamed';
  base64: boolean;
}

export class Exchange {
  readonly requestId = randomUUID();
  /** Set when the response is complete (or failed). */
  response: Response | undefined;
  error: string | undefined;
  /** Stream accounting: data received vs. credit granted (INITIAL_CREDIT_BYTES + grants). */
  received = 0;
  granted = INITIAL_CREDIT_BYTES;
  maxOutstanding = 0;
  violations: string[] = [];
  /** Credit the sidecar granted for the request body. */
  uploadCredit = INITIAL_CREDIT_BYTES;
  private start: { status: number; headers: [string, string][] } | undefined;
  private chunks: Buffer[] = [];
  private seq = 0;
  /** Frames for this request after it finished (there must be none). */
  late: string[] = [];

  constructor(private readonly socket: FakeSocket) {}

  /** Grants the sidecar `bytes` more credit for the response. */
  credit(bytes: number): void {
    this.granted += bytes;
    this.socket.push('proxy_credit', streamEventPayload({ event: 'proxy_credit', requestId: this.requestId, bytes }));
  }

  cancel(): void {
    this.socket.push('proxy_cancel', { request_id: this.requestId });
  }

  /** Sends a body as proxy_req_chunk / proxy_req_end, never more than the sidecar granted. */
  async upload(body: Buffer, timeoutMs = 20_000): Promise<void> {
    let sent = 0;
    for (let seq = 0; sent < body.length; seq++) {
      await eventually(() => {
        if (this.uploadCredit - sent <= 0) throw new Error(`upload stalled at ${sent} bytes: no credit from the sidecar`);
      }, timeoutMs, 1);
      const n = Math.min(CHUNK_MAX_BYTES, this.uploadCredit - sent, body.length - sent);
      this.socket.push('proxy_req_chunk', { request_id: this.requestId, seq, data: body.subarray(sent, sent + n).toString('base64') });
      sent += n;
    }
    this.socket.push('proxy_req_end', { request_id: this.requestId });
  }

  done(timeoutMs = 10_000): Promise<Response> {
    return eventually(() => {
      if (this.error !== undefined) throw new Error(`the sidecar answered proxy_res_error: ${this.error}`);
      if (this.response === undefined) throw new Error(`no response to ${this.requestId}`);
      return this.response;
    }, timeoutMs);
  }

  /** Records one frame the sidecar sent about this request. */
  receive(frame: TunnelFrame): void {
    if (this.response !== undefined || this.error !== undefined) return void this.late.push(frame.event);
    if (frame.event === 'proxy_credit') {
      const bytes = frame.payload.bytes;
      if (typeof bytes === 'number') this.uploadCredit += bytes;
      return;
    }
    if (frame.event === 'proxy_res') {
      const res = decodeProxyResponse(frame.payload);
      if (res === undefined) return void this.violations.push('undecodable proxy_res');
      const body = res.base64 ? Buffer.from(res.body, 'base64') : Buffer.from(res.body, 'utf8');
      this.response = { status: res.status, headers: res.headers, body, form: 'whole', base64: res.base64 };
      return;
    }
    const e = decodeStreamEvent(frame.event, frame.payload);
    if (e === undefined) return void this.violations.push(`undecodable ${frame.event}`);
    switch (e.event) {
      case 'proxy_res_start':
        this.start = { status: e.status, headers: e.headers };
        return;
      case 'proxy_res_chunk':
        if (this.start === undefined) this.violations.push('chunk before start');
        if (e.seq !== this.seq++) this.violations.push(`seq ${e.seq}, expected ${this.seq - 1}`);
        if (e.data.length > CHUNK_MAX_BYTES) this.violations.push(`chunk of ${e.data.length} bytes`);
        this.received += e.data.length;
        this.maxOutstanding = Math.max(this.maxOutstanding, this.received - (this.granted - INITIAL_CREDIT_BYTES));
        if (this.received > this.granted) this.violations.push(`over credit: ${this.received} received, ${this.granted} granted`);
        this.chunks.push(e.data);
        return;
      case 'proxy_res_end':
        if (this.start === undefined) return void this.violations.push('end before start');
        this.response = { ...this.start, body: Buffer.concat(this.chunks), form: 'streamed', base64: true };
        return;
      case 'proxy_res_error':
        this.error = e.reason;
        return;
      default:
        this.violations.push(`unexpected ${e.event}`);
    }
  }
}

/** One sidecar socket as the server sees it. */
export class FakeSocket {
  readonly frames: TunnelFrame[] = [];
  joinRef: string | undefined;
  joinPayload: Record<string, unknown> | undefined;
  granted: Extension[] = [];
  heartbeats: number[] = [];
  closed: { code: number; reason: string } | undefined;
  readonly exchanges = new Map<string, Exchange>();
  readonly checks = new Map<string, WsCheckResult>();
  readonly wsEvents: WsEvent[] = [];
  /** Whether heartbeats are acknowledged (off: the sidecar should find the socket dead). */
  ackHeartbeats = true;

  constructor(
    readonly server: FakeTelephoneServer,
    readonly ws: WebSocket,
    readonly token: string,
    readonly pathId: string,
  ) {
    ws.on('message', (data: Buffer) => this.receive(data.toString('utf8')));
    ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
    ws.on('error', () => undefined);
  }

  get isJoined(): boolean {
    return this.joinRef !== undefined;
  }

  push(event: string, payload: object): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(encodePush(this.joinRef ?? '1', this.pathId, event, payload));
  }

  request(req: { method: RelayedMethod; path: string; query?: string; headers?: Record<string, string>; body?: Buffer; streamed?: boolean }): Exchange {
    const exchange = new Exchange(this);
    this.exchanges.set(exchange.requestId, exchange);
    const binary = this.granted.includes('binary_body');
    const body = req.streamed === true ? '' : (req.body ?? Buffer.alloc(0)).toString(binary ? 'base64' : 'utf8');
    this.ws.send(
      encodeProxyRequest(this.joinRef ?? '1', this.pathId, {
        requestId: exchange.requestId,
        method: req.method,
        path: req.path,
        queryString: req.query ?? '',
        headers: req.headers ?? {},
        body,
        ...(binary ? { bodyEncoding: 'base64' as const } : {}),
        ...(req.streamed === true ? { streamed: true as const } : {}),
      }),
    );
    return exchange;
  }

  wsCheck(path: string, headers: Record<string, string>, query = ''): Promise<WsCheckResult> {
    const id = randomUUID();
    this.ws.send(encodeWsOpen(this.joinRef ?? '1', this.pathId, 'ws_check', { id, path, queryString: query, headers }));
    return eventually(() => {
      const result = this.checks.get(id);
      if (result === undefined) throw new Error(`no ws_check_result for ${id}`);
      return result;
    });
  }

  wsConnect(path: string, headers: Record<string, string>, query = ''): string {
    const id = randomUUID();
    this.ws.send(encodeWsOpen(this.joinRef ?? '1', this.pathId, 'ws_connect', { id, path, queryString: query, headers }));
    return id;
  }

  wsFrame(connectionId: string, opcode: WsOpcode, data: Buffer | string): void {
    this.ws.send(encodeWsFrame(this.joinRef ?? '1', this.pathId, connectionId, opcode, Buffer.from(data)));
  }

  wsClose(connectionId: string, code: number, reason: string): void {
    this.ws.send(encodeWsClose(this.joinRef ?? '1', this.pathId, connectionId, code, reason));
  }

  /** The first relayed-WebSocket event matching, waiting for it. */
  wsEvent<E extends WsEvent['event']>(connectionId: string, event: E, match: (e: Extract<WsEvent, { event: E }>) => boolean = () => true): Promise<Extract<WsEvent, { event: E }>> {
    return eventually(() => {
      const found = this.wsEvents.find((e): e is Extract<WsEvent, { event: E }> => e.connectionId === connectionId && e.event === event && match(e as Extract<WsEvent, { event: E }>));
      if (found === undefined) throw new Error(`no ${event} for ${connectionId}; got ${JSON.stringify(this.wsEvents.map((e) => e.event))}`);
      return found;
    });
  }

  private receive(text: string): void {
    const frame = decodeTunnelFrame(text);
    if (frame === undefined) throw new Error(`the sidecar sent a frame that is not Phoenix V2: ${text.slice(0, 200)}`);
    this.frames.push(frame);
    switch (frame.event) {
      case 'phx_join': {
        if (frame.topic !== `telephone:${this.pathId}`) return void this.ws.send(encodeReply(frame.joinRef, frame.ref, frame.topic, 'error', { reason: 'path_id_mismatch' }));
        this.joinRef = frame.joinRef ?? '1';
        this.joinPayload = { ...frame.payload };
        const asked = Array.isArray(frame.payload.extensions) ? requestedExtensions(frame.payload) : undefined;
        this.granted = asked === undefined ? [] : asked.filter((e) => this.server.grant.includes(e));
        const exp = jwt.decode(this.token, { json: true })?.exp;
        const expiresIn = typeof exp === 'number' ? exp - Math.floor(Date.now() / 1000) : 3600;
        this.ws.send(encodeJoinReply(frame.ref, this.pathId, expiresIn, asked === undefined ? undefined : this.granted));
        return this.server.onJoin?.(this);
      }
      case 'heartbeat':
        this.heartbeats.push(heartbeatTs(frame.payload) ?? -1);
        if (this.ackHeartbeats) this.push('heartbeat_ack', { ts: heartbeatTs(frame.payload) ?? Math.floor(Date.now() / 1000) });
        return;
      case 'refresh_token': {
        this.server.refreshes++;
        const claims = jwt.decode(this.token, { json: true }) ?? {};
        const token = tunnelToken(this.pathId, { sub: claims.sub, iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + this.server.refreshTtlS });
        this.server.issued.push(token);
        return void this.ws.send(encodeReply(this.joinRef ?? null, frame.ref, frame.topic, 'ok', { token, expires_in: this.server.refreshTtlS }));
      }
      case 'ws_check_result': {
        const result = decodeWsCheckResult(frame.payload);
        if (result !== undefined) this.checks.set(result.checkId, result);
        return;
      }
      case 'ws_connected':
      case 'ws_frame':
      case 'ws_closed':
      case 'ws_error': {
        const event = decodeWsEvent(frame.event, frame.payload);
        if (event === undefined) throw new Error(`undecodable ${frame.event}: ${text.slice(0, 200)}`);
        this.wsEvents.push(event);
        return;
      }
      default: {
        const id = frame.payload.request_id;
        const exchange = typeof id === 'string' ? this.exchanges.get(id) : undefined;
        if (exchange !== undefined) exchange.receive(frame);
        else this.server.unexpected.push(text.slice(0, 200));
      }
    }
  }
}

export class FakeTelephoneServer {
  readonly sockets: FakeSocket[] = [];
  /** Every token presented at an upgrade, accepted or not. */
  readonly tokensSeen: string[] = [];
  readonly issued: string[] = [];
  readonly unexpected: string[] = [];
  refreshes = 0;
  /** Upgrades answered with this status instead of accepted (403 bad token, 503 draining). */
  refuseWith: number | undefined;
  refused = 0;
  grant: readonly Extension[];
  readonly refreshTtlS: number;
  /** Called right after a join reply is sent, in the same turn (to push something right behind it). */
  onJoin: ((socket: FakeSocket) => void) | undefined;

  private constructor(
    private readonly wss: WebSocketServer,
    options: FakeOptions,
  ) {
    this.grant = options.grant ?? [];
    this.refreshTtlS = options.refreshTtlS ?? 3600;
  }

  static async start(t: TestContext, options: FakeOptions = {}): Promise<FakeTelephoneServer> {
    // verifyClient runs only after the server object below exists.
    const holder: { server?: FakeTelephoneServer } = {};
    const wss = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      path: '/telephone/websocket',
      maxPayload: 256 * 1024 * 1024,
      verifyClient: (info: { req: IncomingMessage }, done: (ok: boolean, status?: number) => void) => {
        const query = new URL(info.req.url ?? '/', 'http://x').searchParams;
        const token = query.get('token') ?? '';
        const server = holder.server;
        if (server === undefined) return done(false, 503);
        server.tokensSeen.push(token);
        if (server.refuseWith !== undefined || query.get('vsn') !== '2.0.0') {
          server.refused++;
          return done(false, server.refuseWith ?? 400);
        }
        try {
          jwt.verify(token, FAKE_SECRET, { algorithms: ['HS256'] });
          done(true);
        } catch {
          server.refused++;
          done(false, 403);
        }
      },
    });
    const fake = new FakeTelephoneServer(wss, options);
    holder.server = fake;
    wss.on('connection', (ws, req) => {
      const token = new URL(req.url ?? '/', 'http://x').searchParams.get('token') ?? '';
      const pathId = String(jwt.decode(token, { json: true })?.path_id);
      fake.sockets.push(new FakeSocket(fake, ws, token, pathId));
    });
    await new Promise<void>((resolve) => wss.once('listening', resolve));
    t.after(() => fake.close());
    return fake;
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.wss.address() as AddressInfo).port}`;
  }

  /** The `n`th socket (0-based) once it has joined. */
  joined(n: number, timeoutMs = 10_000): Promise<FakeSocket> {
    return eventually(() => {
      const socket = this.sockets[n];
      if (socket === undefined || !socket.isJoined) throw new Error(`socket ${n} has not joined (${this.sockets.length} sockets so far)`);
      return socket;
    }, timeoutMs);
  }

  close(): Promise<void> {
    for (const client of this.wss.clients) client.terminate();
    return new Promise((resolve) => this.wss.close(() => resolve()));
  }
}
