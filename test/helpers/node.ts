// Starts a real Switchboard node in this process on port 0, with a fresh
// config built from overrides, and tears it down after the test.
import jwt from 'jsonwebtoken';
import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config/load';
import { createLogger } from '../../src/log/logger';
import { startNode, type NodeOptions, type RunningNode } from '../../src/main';

export const TEST_SECRET = 'test-secret-that-is-at-least-32-bytes-long!';

export interface TestNode extends RunningNode {
  /** Log records written by the node, parsed. */
  logs: Record<string, unknown>[];
  /** Mints a token with the node's secret (HS256), independent of the server's signer. */
  token(claims: Record<string, unknown>, options?: jwt.SignOptions): string;
}

export async function startTestNode(
  t: TestContext | undefined,
  env: Record<string, string> = {},
  extra: Partial<Omit<NodeOptions, 'config' | 'logger'>> = {},
): Promise<TestNode> {
  const config = loadConfig({ JWT_SECRET: TEST_SECRET, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'debug', NODE_ID: `n-${randomBytes(3).toString('hex')}`, ...env });
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  const node = await startNode({ config, logger: createLogger(config.LOG_LEVEL, sink), ...extra });
  t?.after(() => node.close());
  const secret = config.JWT_SECRET ?? TEST_SECRET;
  return Object.assign(node, {
    logs,
    token: (claims: Record<string, unknown>, options: jwt.SignOptions = {}) =>
      jwt.sign({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims }, secret, { algorithm: 'HS256', ...options }),
  });
}
