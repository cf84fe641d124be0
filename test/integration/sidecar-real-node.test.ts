// `switchboard tunnel` against a real Switchboard node's /telephone/websocket
// (not the fake): the node refuses a bad token with 403, grants no extension
// while its relay is being built (the sidecar falls back to the baseline),
// takes the sidecar's heartbeats and refreshes its token.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import jwt from 'jsonwebtoken';
import { createLogger } from '../../src/log/logger';
import { Sidecar, TokenRefusedError } from '../../src/sidecar/sidecar';
import { readTunnelToken } from '../../src/sidecar/token';
import { eventually } from '../helpers/eventually';
import { http } from '../helpers/http';
import { startTestNode, TEST_SECRET, type TestNode } from '../helpers/node';
import { PATH_ID } from '../helpers/sidecar';

function sidecarFor(node: TestNode, token: string): Sidecar {
  const read = readTunnelToken(token, Date.now() / 1000);
  if (!read.ok) throw new Error(read.problem);
  return new Sidecar({
    settings: { server: new URL(`ws://127.0.0.1:${node.port}`), token, tokenFacts: read.facts, to: new URL('http://127.0.0.1:9'), heartbeatIntervalMs: 100 },
    logger: createLogger('silent'),
    backoff: { baseMs: 20, capMs: 200 },
  });
}

test('a real node: heartbeats keep the socket, the token is refreshed at half-life, the node counts the tunnel', async (t) => {
  // A node that closes a sidecar silent for 1 s, and a 4 s token: refreshed after 2 s, two heartbeat timeouts later.
  const node = await startTestNode(t, { TUNNEL_HEARTBEAT_TIMEOUT_MS: '1000' });
  const now = Math.floor(Date.now() / 1000);
  const token = node.token({ sub: `tunnel-${PATH_ID}`, jti: 'j1', path_id: PATH_ID, roles: ['tunnel'], iat: now, exp: now + 4 });
  const sidecar = sidecarFor(node, token);
  t.after(() => sidecar.stop());
  await sidecar.start();
  await eventually(async () => assert.equal((JSON.parse((await http(node.port, 'GET', '/health')).body) as { tunnels: number }).tunnels, 1));

  await eventually(() => assert.notEqual(sidecar.currentToken, token), 6000, 20);
  const claims = jwt.verify(sidecar.currentToken, TEST_SECRET, { algorithms: ['HS256'] }) as jwt.JwtPayload;
  assert.equal(claims.path_id, PATH_ID);
  assert.notEqual(claims.jti, 'j1');
  assert.deepEqual(sidecar.links, { active: 1, draining: 0 }, 'the first socket is still the one: the node took every heartbeat');
});

test('a real node refuses a bad token at the upgrade: start() rejects with TokenRefusedError (the CLI exits 1)', async (t) => {
  const node = await startTestNode(t);
  const forged = jwt.sign({ path_id: PATH_ID, roles: ['tunnel'], iat: Math.floor(Date.now() / 1000) }, 'some-other-secret-that-is-32-bytes-long!!');
  const sidecar = sidecarFor(node, forged);
  t.after(() => sidecar.stop());
  await assert.rejects(sidecar.start(), (error: unknown) => error instanceof TokenRefusedError && error.status === 403);
});
