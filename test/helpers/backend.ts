// A real back end behind a tunnel: node:http plus a `ws` server on one port 0.
//   /echo            → 200 JSON {method, path, query, headers, body}
//   /status/<code>   → that status, body "status <code>"
//   /bytes?n=<n>     → n bytes of a fixed pattern (application/octet-stream)
//   /stream?n=<n>    → the same bytes written as the socket takes them (for 100 MiB bodies); &chunked: no Content-Length
//   /upload          → 200 JSON {bytes, sha256} of the request body, hashed as it comes; ?pause=<ms> reads nothing that long first
//   /hang            → never answers; `hangs` counts those the client aborted
//   /slow?ms=<ms>    → 200 "slow" after that long
//   /cookies         → two Set-Cookie lines
//   WebSocket /ws    → echoes "echo:<text>" and binary as is; "close:<code>" closes with that code
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import { WebSocketServer } from 'ws';

export interface Backend {
  port: number;
  origin: string;
  /** Requests to /hang received, and those whose client went away (a cancel reached the back end). */
  hanging: number;
  aborted: number;
  /** Requests to /slow received. */
  slow: number;
  /** Close codes and reasons the back end's WebSockets were closed with by the relay. */
  wsCloses: { code: number; reason: string }[];
  /** Pings the back end's WebSockets received. */
  wsPings: string[];
  server: Server;
}

/** The pattern repeats every 64 KiB ((i * 31 + (i >> 8)) & 255): one period, copied. */
const PERIOD = Buffer.from(Array.from({ length: 65536 }, (_, i) => (i * 31 + (i >> 8)) & 255));

/** n bytes of a fixed pattern, from `offset` on (so a long pattern can be made piece by piece). */
export function pattern(n: number, offset = 0): Buffer {
  const out = Buffer.allocUnsafe(n);
  for (let at = 0; at < n; ) {
    const from = (offset + at) % PERIOD.length;
    at += PERIOD.copy(out, at, from, Math.min(PERIOD.length, from + n - at));
  }
  return out;
}

/** The pattern of `n` bytes in 256 KiB pieces, each written when the socket took the last; `chunked`: without a Content-Length. */
export function streamPattern(n: number, res: ServerResponse, chunked = false): void {
  const piece = 256 * 1024;
  res.writeHead(200, chunked ? { 'content-type': 'application/octet-stream' } : { 'content-type': 'application/octet-stream', 'content-length': String(n) });
  let sent = 0;
  const more = (): void => {
    while (sent < n) {
      const size = Math.min(piece, n - sent);
      const ok = res.write(pattern(size, sent));
      sent += size;
      if (!ok) return void res.once('drain', more);
    }
    res.end();
  };
  more();
}

export async function startBackend(t: TestContext): Promise<Backend> {
  const backend: Backend = { port: 0, origin: '', hanging: 0, aborted: 0, slow: 0, wsCloses: [], wsPings: [], server: createServer() };
  const server = backend.server;
  server.on('request', (req: IncomingMessage, res) => {
    const url = new URL(req.url ?? '/', 'http://backend');
    if (url.pathname === '/hang') {
      backend.hanging++;
      req.socket.on('close', () => backend.aborted++);
      return;
    }
    if (url.pathname === '/slow') {
      backend.slow++;
      return void setTimeout(() => res.end('slow'), Number(url.searchParams.get('ms') ?? 0));
    }
    if (url.pathname === '/stream') return void streamPattern(Number(url.searchParams.get('n') ?? 0), res, url.searchParams.has('chunked'));
    if (url.pathname === '/upload') {
      // ?pause=<ms>: the back end reads nothing for that long first (the sidecar's credit runs out).
      const pause = Number(url.searchParams.get('pause') ?? 0);
      if (pause > 0) {
        req.pause();
        setTimeout(() => req.resume(), pause);
      }
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
      });
      return void req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ bytes, sha256: hash.digest('hex') }));
      });
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (url.pathname.startsWith('/status/')) {
        const code = Number(url.pathname.slice(8));
        res.writeHead(code, { 'content-type': 'text/plain' });
        return res.end(code === 204 || code === 304 ? undefined : `status ${code}`);
      }
      if (url.pathname === '/bytes') {
        const n = Number(url.searchParams.get('n') ?? 0);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(n) });
        return res.end(pattern(n));
      }
      if (url.pathname === '/cookies') {
        res.setHeader('set-cookie', ['a=1; Path=/', 'b=2; Path=/']);
        return res.end('cookies');
      }
      res.writeHead(200, { 'content-type': 'application/json', 'x-backend': 'yes' });
      res.end(JSON.stringify({ method: req.method, path: url.pathname, query: url.search.slice(1), headers: req.headers, body: body.toString('utf8') }));
    });
  });
  const wss = new WebSocketServer({ server, path: '/ws', handleProtocols: (protocols) => [...protocols][0] ?? false });
  wss.on('connection', (socket) => {
    socket.on('ping', (data: Buffer) => backend.wsPings.push(data.toString()));
    socket.on('close', (code, reason) => backend.wsCloses.push({ code, reason: reason.toString() }));
    socket.on('message', (data: Buffer, isBinary) => {
      const text = data.toString('utf8');
      if (!isBinary && text.startsWith('close:')) return socket.close(Number(text.slice(6)), 'backend bye');
      socket.send(isBinary ? data : `echo:${text}`, { binary: isBinary });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  backend.port = (server.address() as AddressInfo).port;
  backend.origin = `http://127.0.0.1:${backend.port}`;
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return backend;
}
