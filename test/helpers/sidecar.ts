// Starts `switchboard tunnel`'s Sidecar in this process against a fake
// Telephone server, with real back ends (node:http and ws on port 0), and
// tears everything down after the test.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { TestContext } from 'node:test';
import { WebSocketServer } from 'ws';
import { createLogger } from '../../src/log/logger';
import { Sidecar, type SidecarDeps } from '../../src/sidecar/sidecar';
import { readTunnelToken } from '../../src/sidecar/token';
import { tunnelToken, type FakeTelephoneServer } from './fake-telephone-server';

export const PATH_ID = '550e8400-e29b-41d4-a716-446655440000';

export interface RunningSidecar {
  sidecar: Sidecar;
  logs: Record<string, unknown>[];
  /** Every log line as written, to check that no token or query leaks. */
  raw: string[];
}

export async function startSidecar(
  t: TestContext,
  server: FakeTelephoneServer,
  backendUrl: string,
  options: { token?: string; heartbeatIntervalMs?: number; wait?: boolean } & Partial<Omit<SidecarDeps, 'settings' | 'logger'>> = {},
): Promise<RunningSidecar> {
  const token = options.token ?? tunnelToken(PATH_ID);
  const read = readTunnelToken(token, Date.now() / 1000);
  if (!read.ok) throw new Error(read.problem);
  const logs: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n'))
        if (line.trim() !== '') {
          raw.push(line);
          logs.push(JSON.parse(line) as Record<string, unknown>);
        }
      callback();
    },
  });
  const sidecar = new Sidecar({
    settings: { server: new URL(server.url), token, tokenFacts: read.facts, to: new URL(backendUrl), heartbeatIntervalMs: options.heartbeatIntervalMs ?? 30_000 },
    logger: createLogger('debug', sink),
    backoff: options.backoff ?? { baseMs: 20, capMs: 200 },
    ...(options.joinTimeoutMs === undefined ? {} : { joinTimeoutMs: options.joinTimeoutMs }),
    ...(options.refreshRetryMs === undefined ? {} : { refreshRetryMs: options.refreshRetryMs }),
  });
  t.after(() => sidecar.stop());
  const started = sidecar.start();
  if (options.wait !== false) await started;
  else started.catch(() => undefined);
  return { sidecar, logs, raw };
}

export interface HttpBackend {
  server: Server;
  url: string;
  port: number;
}

/** A real HTTP back end on port 0 running `handler`; its sockets are destroyed in teardown. */
export async function startHttpBackend(t: TestContext, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<HttpBackend> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const port = (server.address() as AddressInfo).port;
  return { server, url: `http://127.0.0.1:${port}`, port };
}

/** A real WebSocket back end on port 0 (attach handlers to `wss`); closed in teardown. */
export async function startWsBackend(t: TestContext, options: ConstructorParameters<typeof WebSocketServer>[0] = {}): Promise<{ wss: WebSocketServer; url: string }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, ...options });
  await new Promise<void>((resolve) => wss.once('listening', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close(() => resolve());
      }),
  );
  return { wss, url: `http://127.0.0.1:${(wss.address() as AddressInfo).port}` };
}

/** Reads a request body whole. */
export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}
