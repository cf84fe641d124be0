// /telephone/websocket against the frames captured from the real Vera
// Telephone client (shared/TUNNEL-PROTOCOL.md §1–§5): the upgrade, join,
// heartbeats, token refresh and the heartbeat timeout, replayed byte for byte.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import jwt from 'jsonwebtoken';
import WebSocket from 'ws';
import { eventually } from '../helpers/eventually';
import { http } from '../helpers/http';
import { startTestNode, TEST_SECRET, type TestNode } from '../helpers/node';

const PATH = '550e8400-e29b-41d4-a716-446655440000';
const topic = `telephone:${PATH}`;

/** A sidecar as the Telephone client is one: raw text frames, kept verbatim. */
class RawSidecar {
  readonly texts: string[] = [];
  closed: { code: number; reason: string } | undefined;
  private cursor = 0;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => this.texts.push(data.toString('utf8')));
    ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
    ws.on('error', () => undefined);
  }

  static connect(t: TestContext, node: TestNode, token: string): Promise<RawSidecar> {
    const ws = new WebSocket(`ws://127.0.0.1:${node.port}/telephone/websocket?token=${token}&vsn=2.0.0`);
    const sidecar = new RawSidecar(ws);
    t.after(() => ws.terminate());
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(sidecar));
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode })));
      ws.once('error', reject);
    });
  }

  /** Sends `frame` and returns the next frame the server sends. */
  async exchange(frame: string): Promise<string> {
    this.ws.send(frame);
    return this.next();
  }

  next(): Promise<string> {
    return eventually(() => {
      const text = this.texts[this.cursor];
      if (text === undefined) throw new Error(`no frame from the server; got ${JSON.stringify(this.texts)}`);
      this.cursor++;
      return text;
    });
  }
}

const tunnelToken = (node: TestNode, claims: Record<string, unknown> = {}) =>
  node.token({ sub: `tunnel-${PATH}`, jti: 'j1', path_id: PATH, roles: ['tunnel'], iat: Math.floor(Date.now() / 1000), ...claims });

test('the captured join, heartbeats and token refresh get exactly the captured replies', async (t) => {
  const node = await startTestNode(t);
  const exp = Math.floor(Date.now() / 1000) + 3600;
  const sidecar = await RawSidecar.connect(t, node, tunnelToken(node, { exp }));

  const joined = await sidecar.exchange(`["1","1","${topic}","phx_join",{}]`);
  const expiresIn = exp - Math.floor(Date.now() / 1000);
  const reply = (seconds: number) => `["1","1","${topic}","phx_reply",{"status":"ok","response":{"status":"ok","path":"/call/${PATH}","expires_in":${seconds}}}]`;
  assert.ok([reply(expiresIn), reply(expiresIn + 1)].includes(joined), joined);

  assert.equal(await sidecar.exchange(`["7","7","${topic}","heartbeat",{"ts":1795310303}]`), `["1",null,"${topic}","heartbeat_ack",{"ts":1795310303}]`);
  const ack = JSON.parse(await sidecar.exchange(`["8","8","${topic}","heartbeat",{}]`)) as [string, null, string, string, { ts: number }];
  assert.deepEqual(ack.slice(0, 4), ['1', null, topic, 'heartbeat_ack']);
  assert.ok(Math.abs(ack[4].ts - Date.now() / 1000) < 60, 'the ack carries the server time in seconds');
  assert.equal(await sidecar.exchange('["x","x","phoenix","heartbeat",{}]'), '["x","x","phoenix","phx_reply",{"status":"ok","response":{}}]');

  const refreshed = JSON.parse(await sidecar.exchange(`["13","13","${topic}","refresh_token",{}]`)) as [string, string, string, string, { status: string; response: { token: string; expires_in: number } }];
  assert.deepEqual(refreshed.slice(0, 4), ['1', '13', topic, 'phx_reply']);
  assert.equal(refreshed[4].status, 'ok');
  assert.equal(refreshed[4].response.expires_in, 3600);
  const claims = jwt.verify(refreshed[4].response.token, TEST_SECRET, { algorithms: ['HS256'] }) as Record<string, unknown>;
  assert.deepEqual([claims.sub, claims.path_id, claims.roles], [`tunnel-${PATH}`, PATH, ['tunnel']]);
  assert.notEqual(claims.jti, 'j1');
  assert.equal(Number(claims.exp) - Number(claims.iat), 3600);

  // /health counts the joined sidecar, and not once it is gone.
  assert.equal(((await http(node.port, 'GET', '/health')).json() as { tunnels: number }).tunnels, 1);
  sidecar.ws.close();
  await eventually(async () => assert.equal(((await http(node.port, 'GET', '/health')).json() as { tunnels: number }).tunnels, 0));
});

test('a join on another path_id is refused; frames that are not Phoenix messages are ignored and the socket stays', async (t) => {
  const node = await startTestNode(t);
  const sidecar = await RawSidecar.connect(t, node, tunnelToken(node));
  assert.equal(
    await sidecar.exchange('["1","1","telephone:someone-else","phx_join",{}]'),
    '["1","1","telephone:someone-else","phx_reply",{"status":"error","response":{"reason":"path_id_mismatch"}}]',
  );
  for (const junk of ['', 'not json', '{}', '[1,2,3]', `["1","1","${topic}","phx_join",[]]`]) sidecar.ws.send(junk);
  sidecar.ws.send(Buffer.from([1, 2, 3]));
  assert.equal(await sidecar.exchange(`["2","2","${topic}","heartbeat",{"ts":5}]`), `["2",null,"${topic}","heartbeat_ack",{"ts":5}]`);
  assert.equal(sidecar.closed, undefined);
  assert.equal(((await http(node.port, 'GET', '/health')).json() as { tunnels: number }).tunnels, 0, 'a sidecar that never joined serves nothing');
});

test('the upgrade is refused with 403 for a missing, bad or non-tunnel token; a path_id without roles is a tunnel token', async (t) => {
  const node = await startTestNode(t);
  const refused = async (token: string) => assert.equal(((await RawSidecar.connect(t, node, token).catch((e: unknown) => e)) as { status?: number }).status, 403, token);
  await refused('');
  await refused('not-a-jwt');
  await refused(jwt.sign({ sub: 'x', path_id: PATH, exp: Math.floor(Date.now() / 1000) + 60 }, 'another-secret-that-is-long-enough-to-sign'));
  await refused(node.token({ sub: 'app-user' }));
  await refused(node.token({ sub: 'admin', roles: ['admin'], path_id: PATH }));
  await refused(tunnelToken(node, { path_id: 'a/b' }));
  const telephoneEra = jwt.sign({ sub: 'legacy', jti: 'j', path_id: PATH, iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 60 }, TEST_SECRET);
  const sidecar = await RawSidecar.connect(t, node, telephoneEra);
  assert.ok((await sidecar.exchange(`["1","1","${topic}","phx_join",{}]`)).includes('"status":"ok"'));
});

test('without a heartbeat for TUNNEL_HEARTBEAT_TIMEOUT_MS the whole socket is closed', async (t) => {
  const node = await startTestNode(t, { TUNNEL_HEARTBEAT_TIMEOUT_MS: '1000' });
  const sidecar = await RawSidecar.connect(t, node, tunnelToken(node));
  await sidecar.exchange(`["1","1","${topic}","phx_join",{}]`);
  await eventually(() => assert.deepEqual(sidecar.closed, { code: 1001, reason: 'heartbeat_timeout' }), 5000);
});
