// Requests written byte for byte on a TCP socket (node:net), for what HTTP
// clients will not send: a header repeated on several lines (they merge
// them into one), or a body that is announced and never finished.
import { connect, type Socket } from 'node:net';
import type { TestContext } from 'node:test';

export interface RawResponse {
  status: number;
  /** Response head: status line and headers, without the blank line. */
  head: string;
  /** The body, complete when the response announced a Content-Length (empty for a 101). */
  body: string;
  /** Still open: a 101 is a live WebSocket, and a refused request may not have been hung up yet. */
  socket: Socket;
}

/**
 * Writes `lines` (request line and header lines) and then `body`, if any, and resolves once the
 * response head and its Content-Length worth of body have arrived. The socket is destroyed in
 * the test's teardown.
 */
export function rawExchange(t: TestContext, port: number, lines: readonly string[], body?: string | Buffer): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    t.after(() => socket.destroy());
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = received.subarray(0, end).toString('latin1');
      const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1] ?? NaN);
      const length = status === 101 ? 0 : Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      const rest = received.subarray(end + 4);
      if (rest.length < length) return;
      socket.off('data', onData);
      resolve({ status, head, body: rest.subarray(0, length).toString('utf8'), socket });
    };
    socket.on('data', onData);
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`connection closed before a whole response; got ${JSON.stringify(received.toString('latin1').slice(0, 200))}`)));
    socket.on('connect', () => {
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (body !== undefined) socket.write(body);
    });
  });
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
