// `switchboard tunnel` (src/sidecar/) in this process against a real node,
// forwarding to a real back end; stopped in the test's teardown.
import type { TestContext } from 'node:test';
import { createLogger } from '../../src/log/logger';
import { Sidecar } from '../../src/sidecar/sidecar';
import { readTunnelToken } from '../../src/sidecar/token';

export async function startOwnSidecar(t: TestContext, port: number, token: string, backendOrigin: string): Promise<Sidecar> {
  const read = readTunnelToken(token, Date.now() / 1000);
  if (!read.ok) throw new Error(read.problem);
  const sidecar = new Sidecar({
    settings: { server: new URL(`ws://127.0.0.1:${port}`), token, tokenFacts: read.facts, to: new URL(backendOrigin), heartbeatIntervalMs: 30_000 },
    logger: createLogger('silent'),
    backoff: { baseMs: 20, capMs: 200 },
  });
  t.after(() => sidecar.stop());
  await sidecar.start();
  return sidecar;
}
