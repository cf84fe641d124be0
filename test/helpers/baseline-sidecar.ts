// A tunnel sidecar that speaks only the Telephone baseline (TUNNEL-PROTOCOL.md),
// as the Vera Telephone client does: join with {}, proxy_req → a real HTTP
// request to the back end → one proxy_res (body as UTF-8 text, headers in
// canonical case, optionally as `chunks`), and the WebSocket relay with `ws`.
// Used where the real Telephone binary is not at hand; frames are built by
// hand, not with the server's codec, so a codec bug cannot hide itself.
import { request as httpRequest } from 'node:http';
import type { TestContext } from 'node:test';
import WebSocket from 'ws';
import { eventually } from './eventually';

export interface BaselineSidecarOptions {
  /** The back end's origin, e.g. http://127.0.0.1:3000. */
  backend: string;
  /** Answer with `chunked: true` and chunks of this many characters. */
  chunkChars?: number;
  /** Do not answer proxy_req at all (timeouts, disconnect tests). */
  silent?: boolean;
  /** Do not answer ws_connect (pre-connect buffering and the connect timeout). */
  holdWsConnect?: boolean;
  /** Answer ws_check with supported: false. */
  refuseWebSockets?: boolean;
  /** Connect with wss:// and trust this certificate (a node with TLS_CERT_FILE). */
  ca?: Buffer;
}

type Frame = [string | null, string | null, string, string, Record<string, unknown>];

export class BaselineSidecar {
  readonly requests: Record<string, unknown>[] = [];
  readonly events: Frame[] = [];
  private ref = 1;
  private readonly backendSockets = new Map<string, WebSocket>();

  private constructor(
    readonly ws: WebSocket,
    private readonly topic: string,
    private readonly options: BaselineSidecarOptions,
  ) {
    ws.on('message', (data: Buffer) => this.onFrame(JSON.parse(data.toString('utf8')) as Frame));
    ws.on('error', () => undefined);
  }

  static async connect(t: TestContext, port: number, token: string, pathId: string, options: BaselineSidecarOptions): Promise<BaselineSidecar> {
    const scheme = options.ca === undefined ? 'ws' : 'wss';
    const ws = new WebSocket(`${scheme}://127.0.0.1:${port}/telephone/websocket?vsn=2.0.0&token=${token}`, options.ca === undefined ? {} : { ca: options.ca });
    const sidecar = new BaselineSidecar(ws, `telephone:${pathId}`, options);
    t.after(() => sidecar.kill());
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    sidecar.send('phx_join', {});
    await eventually(() => {
      if (!sidecar.events.some(([, ref, , event]) => event === 'phx_reply' && ref === '1')) throw new Error('not joined');
    });
    return sidecar;
  }

  /** Drops the socket without a goodbye (a vanished sidecar). */
  kill(): void {
    this.ws.terminate();
    for (const socket of this.backendSockets.values()) socket.terminate();
  }

  private send(event: string, payload: Record<string, unknown>): void {
    const ref = String(this.ref++);
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify([ref, ref, this.topic, event, payload]));
  }

  private onFrame(frame: Frame): void {
    this.events.push(frame);
    const [, , , event, payload] = frame;
    if (event === 'proxy_req') {
      this.requests.push(payload);
      if (!this.options.silent) this.relayHttp(payload);
    } else if (event === 'ws_check')
      this.send('ws_check_result', this.options.refuseWebSockets ? { check_id: payload.check_id, supported: false, reason: 'no websocket here' } : { check_id: payload.check_id, supported: true, ...this.protocolOf(payload) });
    else if (event === 'ws_connect' && !this.options.holdWsConnect) this.relayWebSocket(payload);
    else if (event === 'ws_frame') {
      const socket = this.backendSockets.get(payload.connection_id as string);
      const data = Buffer.from(payload.data as string, 'base64');
      if (payload.opcode === 'text') socket?.send(data.toString('utf8'));
      else if (payload.opcode === 'binary') socket?.send(data);
      else if (payload.opcode === 'ping') socket?.ping(data);
    } else if (event === 'ws_close') this.backendSockets.get(payload.connection_id as string)?.close(payload.code as number, payload.reason as string);
  }

  private protocolOf(payload: Record<string, unknown>): { protocol?: string } {
    const offered = (payload.headers as Record<string, string>)['sec-websocket-protocol'];
    const first = offered?.split(',')[0]?.trim();
    return first === undefined || first === '' ? {} : { protocol: first };
  }

  private relayHttp(payload: Record<string, unknown>): void {
    const url = new URL(`${payload.path as string}${payload.query_string === '' ? '' : `?${payload.query_string as string}`}`, this.options.backend);
    const req = httpRequest(url, { method: payload.method as string, headers: { ...(payload.headers as Record<string, string>), 'content-length': String(Buffer.byteLength(payload.body as string)) }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(res.headers)) if (typeof value === 'string') headers[canonical(name)] = value;
        const answer: Record<string, unknown> = { request_id: payload.request_id, status: res.statusCode, headers, body, chunked: false };
        const size = this.options.chunkChars;
        if (size !== undefined) {
          const parts: string[] = [];
          for (let i = 0; i < body.length; i += size) parts.push(body.slice(i, i + size));
          Object.assign(answer, { body: '', chunked: true, chunks: parts });
        }
        this.send('proxy_res', answer);
      });
    });
    req.on('error', () => this.send('proxy_res', { request_id: payload.request_id, status: 502, headers: {}, body: 'backend error', chunked: false }));
    req.end(payload.body as string);
  }

  private relayWebSocket(payload: Record<string, unknown>): void {
    const id = payload.connection_id as string;
    const headers = payload.headers as Record<string, string>;
    const protocols = headers['sec-websocket-protocol']?.split(',').map((p) => p.trim());
    const url = `${this.options.backend.replace(/^http/, 'ws')}${payload.path as string}${payload.query_string === '' ? '' : `?${payload.query_string as string}`}`;
    const socket = new WebSocket(url, protocols);
    socket.on('open', () => {
      this.backendSockets.set(id, socket);
      this.send('ws_connected', socket.protocol === '' ? { connection_id: id } : { connection_id: id, protocol: socket.protocol });
    });
    socket.on('message', (data: Buffer, isBinary: boolean) => this.send('ws_frame', { connection_id: id, opcode: isBinary ? 'binary' : 'text', data: data.toString('base64') }));
    socket.on('pong', (data: Buffer) => this.send('ws_frame', { connection_id: id, opcode: 'pong', data: data.toString('base64') }));
    socket.on('close', (code: number, reason: Buffer) => {
      if (this.backendSockets.delete(id)) this.send('ws_closed', { connection_id: id, code, reason: reason.toString() });
    });
    socket.on('error', (error) => {
      if (!this.backendSockets.has(id)) this.send('ws_error', { connection_id: id, reason: error.message });
    });
  }
}

function canonical(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_m, dash: string, letter: string) => dash + letter.toUpperCase());
}
