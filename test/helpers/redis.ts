// Real redis-server processes for tests: spawned on a free port in a private
// temp directory, killed by PID in teardown. REDIS_URL in the environment
// points the tests at an existing server instead (then stop/start is not
// available and those tests skip).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import Redis from 'ioredis';
import { eventually } from './eventually';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface RedisServer {
  url: string;
  port: number;
  /** A key prefix unique to this test, so tests sharing one server do not see each other. */
  prefix: string;
  /** Stops the server (SIGKILL when `hard`); `start` brings it back on the same port. */
  stop(hard?: boolean): Promise<void>;
  start(): Promise<void>;
  /** Extra arguments given at spawn (e.g. cluster mode). */
  readonly pid: number | undefined;
}

let prefixSeq = 0;

export async function startRedis(t: TestContext | undefined, args: string[] = []): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sb-redis-'));
  let child: ChildProcess | undefined;
  const launch = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...args], {
      stdio: 'ignore',
    });
    await eventually(async () => {
      const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => undefined);
      try {
        await probe.connect();
        await probe.ping();
      } finally {
        probe.disconnect();
      }
    }, 10_000, 25);
  };
  const stop = async (hard = false) => {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill(hard ? 'SIGKILL' : 'SIGTERM');
    await exited;
  };
  await launch();
  t?.after(async () => {
    await stop(true);
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    prefix: `t${process.pid}-${++prefixSeq}:`,
    stop,
    start: launch,
    get pid() {
      return child?.pid;
    },
  };
}
