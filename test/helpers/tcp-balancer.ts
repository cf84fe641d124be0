// A TCP load balancer for tests, as HAProxy in TCP mode with health checks
// would be: each new connection goes round robin to a back end whose
// GET /ready answered 200 at the last check (every 50 ms). Connections are
// piped byte for byte; closed with the test.
import { request as httpRequest } from 'node:http';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import type { TestContext } from 'node:test';

export interface TcpBalancer {
  port: number;
  /** Connections sent to each back-end port so far. */
  sent: Map<number, number>;
}

function ready(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/ready', agent: false, timeout: 500 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

export async function startTcpBalancer(t: TestContext, backends: number[]): Promise<TcpBalancer> {
  const healthy = new Set<number>(backends);
  const sockets = new Set<Socket>();
  const sent = new Map<number, number>();
  let next = 0;
  const checker = setInterval(() => {
    for (const port of backends) void ready(port).then((ok) => (ok ? healthy.add(port) : healthy.delete(port)));
  }, 50);
  const server = createServer((client) => {
    const pool = backends.filter((port) => healthy.has(port));
    const port = pool[next++ % Math.max(1, pool.length)];
    if (port === undefined) return client.destroy();
    sent.set(port, (sent.get(port) ?? 0) + 1);
    const upstream = connect(port, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    client.pipe(upstream).on('close', () => client.destroy());
    upstream.pipe(client).on('close', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    clearInterval(checker);
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as AddressInfo).port, sent };
}
