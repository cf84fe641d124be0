// Requests written byte for byte on a TCP socket (node:net), for what HTTP
// clients will not send: a header repeated on several lines (they merge
// them into one), or a body that is announced and never finished.
import { connect, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { eventually } from './eventually';

export interface RawResponse {
  status: number;
  /** Response head: status line and headers, without the blank line. */
  head: string;
  /** The body, complete when the response announced a Content-Length (empty for a 101). */
  body: string;
}

/** One TCP connection, destroyed in the test's teardown. */
export class RawConnection {
  private received = Buffer.alloc(0);
  private closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
    });
    socket.on('close', () => (this.closed = true));
    // A refused request may be hung up on while the test still writes (EPIPE, ECONNRESET).
    socket.on('error', () => undefined);
  }

  static open(t: TestContext, port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port });
      t.after(() => socket.destroy());
      socket.once('error', reject);
      socket.once('connect', () => resolve(new RawConnection(socket)));
    });
  }

  /** Writes the request line and header lines, then `body` if any, in one write (one segment when small). */
  send(lines: readonly string[], body: string | Buffer = ''): void {
    this.socket.write(Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), Buffer.from(body)]));
  }

  write(bytes: string | Buffer): void {
    this.socket.write(bytes);
  }

  /** Resolves once the response head and its Content-Length worth of body have arrived. */
  response(timeoutMs = 10_000): Promise<RawResponse> {
    return eventually(() => {
      const parsed = parseResponse(this.received);
      if (parsed !== undefined) return parsed;
      throw new Error(`${this.closed ? 'closed' : 'no whole response yet'}; got ${JSON.stringify(this.received.toString('latin1').slice(0, 200))}`);
    }, timeoutMs);
  }
}

function parseResponse(received: Buffer): RawResponse | undefined {
  const end = received.indexOf('\r\n\r\n');
  if (end === -1) return undefined;
  const head = received.subarray(0, end).toString('latin1');
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1] ?? NaN);
  const length = status === 101 ? 0 : Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
  const rest = received.subarray(end + 4);
  if (rest.length < length) return undefined;
  return { status, head, body: rest.subarray(0, length).toString('utf8') };
}

/** Opens a connection, sends one request and waits for its response; the connection stays open. */
export async function rawExchange(t: TestContext, port: number, lines: readonly string[], body?: string | Buffer): Promise<RawResponse> {
  const connection = await RawConnection.open(t, port);
  connection.send(lines, body);
  return connection.response();
}

/** The lines of a WebSocket upgrade request to `path`, followed by `extra` header lines. */
export function upgradeLines(path: string, extra: readonly string[] = []): string[] {
  return [
    `GET ${path} HTTP/1.1`,
    'Host: 127.0.0.1',
    'Connection: Upgrade',
    'Upgrade: websocket',
    'Sec-WebSocket-Version: 13',
    // Any 16 bytes in base64 will do: the test reads only the status.
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    ...extra,
  ];
}
