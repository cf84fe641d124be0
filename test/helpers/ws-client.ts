// A typed WebSocket test client on the `ws` package (an independent
// implementation, not the server's own code): collects every frame, waits
// for the next one matching a predicate, and records the close code/reason.
import WebSocket from 'ws';
import { eventually } from './eventually';

export type Frame = Record<string, unknown> & { type: string };

export interface Closed {
  code: number;
  reason: string;
}

export class TestClient {
  readonly frames: Frame[] = [];
  closed: Closed | undefined;
  private cursor = 0;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      if (isBinary) throw new Error('server sent a binary frame');
      const text = Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8');
      this.frames.push(JSON.parse(text) as Frame);
    });
    ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
    ws.on('error', () => undefined);
  }

  /** Opens a connection; resolves once the socket is open (the server may still close it at once). */
  static connect(port: number, query: string | { token?: string } = {}, headers: Record<string, string> = {}, path = '/ws'): Promise<TestClient> {
    const qs = typeof query === 'string' ? query : query.token === undefined ? '' : `token=${encodeURIComponent(query.token)}`;
    return TestClient.connectUrl(`ws://127.0.0.1:${port}${path}${qs === '' ? '' : `?${qs}`}`, { headers });
  }

  /** Opens a connection to a full URL (wss:// with `ca`, for example); resolves once the socket is open. */
  static connectUrl(url: string, options: WebSocket.ClientOptions = {}): Promise<TestClient> {
    const ws = new WebSocket(url, { maxPayload: 256 * 1024 * 1024, ...options });
    const client = new TestClient(ws);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(client));
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode })));
      ws.once('error', reject);
    });
  }

  /** Connects and waits for the welcome frame. */
  static async welcomed(port: number, token: string): Promise<TestClient & { welcome: Frame }> {
    const client = await TestClient.connect(port, { token });
    const welcome = await client.next('welcome');
    return Object.assign(client, { welcome });
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** The next unread frame of `type` (and matching `where`); frames before it are skipped. */
  async next(type: string, where: (f: Frame) => boolean = () => true, timeoutMs = 5000): Promise<Frame> {
    return eventually(() => {
      for (let i = this.cursor; i < this.frames.length; i++) {
        const frame = this.frames[i];
        if (frame !== undefined && frame.type === type && where(frame)) {
          this.cursor = i + 1;
          return frame;
        }
      }
      throw new Error(`no "${type}" frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames.slice(this.cursor)).slice(0, 500)}`);
    }, timeoutMs);
  }

  /** Sends a request frame with a fresh id and waits for the reply carrying that id. */
  async request(frame: Record<string, unknown>, replyType?: string): Promise<Frame> {
    const id = `r${Math.random().toString(36).slice(2)}`;
    this.send({ ...frame, id });
    return eventually(() => {
      const reply = this.frames.find((f) => f.id === id && (replyType === undefined || f.type === replyType || f.type === 'error'));
      if (reply === undefined) throw new Error(`no reply to ${JSON.stringify(frame).slice(0, 200)}`);
      return reply;
    });
  }

  async waitClosed(timeoutMs = 5000): Promise<Closed> {
    return eventually(() => {
      if (this.closed === undefined) throw new Error('still open');
      return this.closed;
    }, timeoutMs);
  }

  /** Frames of `type` received so far. */
  all(type: string): Frame[] {
    return this.frames.filter((f) => f.type === type);
  }

  /** Drops the connection without a close frame, as a lost network does: the session goes away, resumable (SPEC §3.9). */
  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
  }

  /** Closes with 1000, as an app that is done: the session ends (no resume). Resolves once closed. */
  async goodbye(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    const closed = new Promise<void>((resolve) => this.ws.once('close', () => resolve()));
    this.ws.close(1000);
    await closed;
  }
}
