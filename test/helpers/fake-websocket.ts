// A scripted stand-in for a WebSocket, for the client SDK's unit tests: the
// test plays the server (open, frames, close) and reads what the client sent.
// No network, no timers of its own, so node:test's mock timers drive it all.
import type { WebSocketConstructor } from '../../src/client/platform';

export type SentFrame = Record<string, unknown> & { type: string };

type Handler = ((event: never) => void) | null;

export class FakeSocket {
  readyState = 0;
  onopen: Handler = null;
  onmessage: Handler = null;
  onclose: Handler = null;
  onerror: Handler = null;
  readonly sent: SentFrame[] = [];
  /** What the client closed with, when it closed this socket itself. */
  closedByClient: { code?: number; reason?: string } | undefined;

  constructor(readonly url: string) {}

  /** The `token` query parameter the client connected with. */
  get token(): string | null {
    return new URL(this.url).searchParams.get('token');
  }

  /** The `resume` query parameter (the session the client asks back), null when absent. */
  get resume(): string | null {
    return new URL(this.url).searchParams.get('resume');
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open');
    this.sent.push(JSON.parse(data) as SentFrame);
  }

  close(code?: number, reason?: string): void {
    this.closedByClient = { code, reason };
    this.readyState = 3;
  }

  // ── the server's side ──

  /** Opens the socket and sends a welcome. */
  welcome(fields: Record<string, unknown> = {}): void {
    this.readyState = 1;
    call(this.onopen, {});
    this.receive({ type: 'welcome', user: 'u1', device: 'd1', session: 's1', node: 'n1', heartbeat_ms: 30_000, resumed: false, ...fields });
  }

  receive(frame: Record<string, unknown> | string): void {
    call(this.onmessage, { data: typeof frame === 'string' ? frame : JSON.stringify(frame) });
  }

  /** Answers the last frame the client sent of `type` with `frame` plus that frame's id. */
  answer(type: string, frame: Record<string, unknown>): void {
    const request = this.last(type);
    this.receive({ ...frame, id: request.id });
  }

  last(type: string): SentFrame {
    const frame = [...this.sent].reverse().find((f) => f.type === type);
    if (frame === undefined) throw new Error(`the client sent no ${type}; it sent ${JSON.stringify(this.sent)}`);
    return frame;
  }

  serverClose(code: number, reason = ''): void {
    this.readyState = 3;
    call(this.onclose, { code, reason });
  }
}

function call(handler: Handler, event: unknown): void {
  (handler as ((event: unknown) => void) | null)?.(event);
}

/** A WebSocket class whose instances are collected in `sockets`, in creation order. */
export function fakeWebSocket(): { WebSocket: WebSocketConstructor; sockets: FakeSocket[]; last(): FakeSocket } {
  const sockets: FakeSocket[] = [];
  class Socket extends FakeSocket {
    constructor(url: string) {
      super(url);
      sockets.push(this);
    }
  }
  return {
    WebSocket: Socket,
    sockets,
    last: () => {
      const socket = sockets.at(-1);
      if (socket === undefined) throw new Error('no socket was opened');
      return socket;
    },
  };
}

/** An unsigned JWT-shaped token with `exp` (the client reads it without verifying). */
export function fakeJwt(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}.c2ln`;
}

/** Lets promise continuations (the token provider, request answers) run; mock timers leave setImmediate real. */
export const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
