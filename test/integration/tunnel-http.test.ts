// Public HTTP requests relayed through a sidecar that speaks only the
// Telephone baseline, to a real HTTP back end (SPEC §5, TUNNEL-PROTOCOL.md §6):
// on one node, and with the sidecar on node A and the public client on node B
// over a real Redis — the public client must not be able to tell.
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import WebSocket from 'ws';
import { startBackend } from '../helpers/backend';
import { BaselineSidecar } from '../helpers/baseline-sidecar';
import { eventually } from '../helpers/eventually';
import { http } from '../helpers/http';
import { startTestNode, type TestNode } from '../helpers/node';
import { TUNNEL_TOPOLOGIES } from '../helpers/tunnel-topologies';

const PATH = '550e8400-e29b-41d4-a716-446655440000';

const tunnelToken = (node: TestNode, pathId = PATH) => node.token({ sub: `tunnel-${pathId}`, jti: 'j1', path_id: pathId, roles: ['tunnel'], iat: Math.floor(Date.now() / 1000) });

for (const [name, start] of TUNNEL_TOPOLOGIES)
  describe(`tunnel HTTP relay: ${name}`, () => {
    const setup = async (t: TestContext, env: Record<string, string> = {}, options: { chunkChars?: number; silent?: boolean } = {}) => {
      const nodes = await start(t, env);
      const backend = await startBackend(t);
      const sidecar = await BaselineSidecar.connect(t, nodes.node.port, tunnelToken(nodes.node), PATH, { backend: backend.origin, ...options });
      return { ...nodes, backend, sidecar };
    };

  test('every relayed method keeps its path, query, headers and body', async (t) => {
    const { pub } = await setup(t);
    for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
      const body = method === 'GET' || method === 'OPTIONS' ? undefined : `{"name":"${method}"}`;
      // Node's client frames a DELETE body only with an explicit Content-Length.
      const length: Record<string, string> = body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) };
      const res = await http(pub.port, method, `/call/${PATH}/echo?a=1&b=2`, { headers: { 'x-custom': 'v', 'content-type': 'application/json', ...length }, body });
      assert.equal(res.status, 200, `${method}: ${res.body}`);
      const echoed = res.json() as { method: string; path: string; query: string; headers: Record<string, string>; body: string };
      assert.deepEqual([echoed.method, echoed.path, echoed.query, echoed.body], [method, '/echo', 'a=1&b=2', body ?? '']);
      assert.equal(echoed.headers['x-custom'], 'v');
      assert.equal(echoed.headers['x-forwarded-for'], '127.0.0.1');
      assert.equal(echoed.headers['x-forwarded-proto'], 'http');
      assert.equal(res.headers['x-backend'], 'yes');
      assert.equal(res.headers['content-type'], 'application/json');
    }
    const head = await http(pub.port, 'HEAD', `/call/${PATH}/bytes?n=1234`);
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
  });

  test('statuses and a chunked baseline answer pass through', async (t) => {
    const { pub } = await setup(t, {}, { chunkChars: 7 });
    for (const code of [201, 204, 404, 500]) {
      const res = await http(pub.port, 'GET', `/call/${PATH}/status/${code}`);
      assert.equal(res.status, code);
      assert.equal(res.body, code === 204 ? '' : `status ${code}`);
    }
    const echoed = await http(pub.port, 'GET', `/call/${PATH}/echo?x=${'y'.repeat(100)}`);
    assert.equal((echoed.json() as { query: string }).query, `x=${'y'.repeat(100)}`, 'the chunks are joined in order');
    assert.equal(echoed.headers['content-length'], String(Buffer.byteLength(echoed.body)), 'the relay frames the body itself');
  });

  test('requests the relay answers itself get their status and JSON error', async (t) => {
    const { pub } = await setup(t, { MAX_REQUEST_BYTES: '1000' });
    const error = async (method: string, path: string, status: number, code: string, body?: string) => {
      const res = await http(pub.port, method, path, { body, headers: body === undefined ? {} : { 'content-length': String(body.length) } });
      assert.equal(res.status, status, `${method} ${path}: ${res.body}`);
      assert.equal((res.json() as { error: string }).error, code);
    };
    await error('GET', '/nowhere', 404, 'not_found');
    await error('GET', '/call/', 404, 'not_found');
    await error('GET', `/call/${PATH}/a/../../etc`, 400, 'bad_request');
    await error('GET', `/call/${PATH}/a/%2e%2e/%2E%2E/etc`, 400, 'bad_request');
    await error('TRACE', `/call/${PATH}/echo`, 405, 'method_not_allowed');
    await error('POST', `/call/${PATH}/echo`, 413, 'payload_too_large', 'x'.repeat(1001));
    await error('GET', '/call/nobody-serves-this/echo', 503, 'no_tunnel');
    // The connection survives a refusal before the body: the next request on a new one works.
    assert.equal((await http(pub.port, 'POST', `/call/${PATH}/echo`, { body: 'ok', headers: { 'content-length': '2' } })).status, 200);
  });

  test('a sidecar that never answers gives 504, one that vanishes 502, a response too large 502', async (t) => {
    const { node, pub } = await start(t, { REQUEST_TIMEOUT_MS: '300', MAX_RESPONSE_BYTES: '100000' });
    const backend = await startBackend(t);
    const silent = await BaselineSidecar.connect(t, node.port, tunnelToken(node), PATH, { backend: backend.origin, silent: true });
    const timedOut = await http(pub.port, 'GET', `/call/${PATH}/echo`);
    assert.deepEqual([timedOut.status, (timedOut.json() as { error: string }).error], [504, 'tunnel_timeout']);

    const pending = http(pub.port, 'GET', `/call/${PATH}/echo`);
    await eventually(() => assert.equal(silent.requests.length, 2));
    silent.kill();
    const dropped = await pending;
    assert.deepEqual([dropped.status, (dropped.json() as { error: string }).error], [502, 'tunnel_disconnected']);

    await BaselineSidecar.connect(t, node.port, tunnelToken(node), PATH, { backend: backend.origin });
    const large = await http(pub.port, 'GET', `/call/${PATH}/bytes?n=200000`);
    assert.deepEqual([large.status, (large.json() as { error: string }).error], [502, 'response_too_large']);
    // The baseline carries text: each byte that is not UTF-8 becomes U+FFFD (3 bytes), so 30000 bytes stay under the limit.
    const fits = await http(pub.port, 'GET', `/call/${PATH}/bytes?n=30000`);
    assert.equal(fits.status, 200);
  });

  test('requests spread over two sidecars; one killed mid-request fails its requests with 502 and the other takes the rest', async (t) => {
    const { node, pub } = await start(t, {});
    const backend = await startBackend(t);
    const a = await BaselineSidecar.connect(t, node.port, tunnelToken(node), PATH, { backend: backend.origin, silent: true });
    const b = await BaselineSidecar.connect(t, node.port, tunnelToken(node), PATH, { backend: backend.origin, silent: true });
    const pending = Array.from({ length: 10 }, () => http(pub.port, 'GET', `/call/${PATH}/echo`));
    await eventually(() => assert.equal(a.requests.length + b.requests.length, 10));
    assert.deepEqual([a.requests.length, b.requests.length], [5, 5], 'least in flight alternates');
    a.kill();
    const results = await Promise.all(pending.slice(0, 10).map((p) => Promise.race([p, new Promise((r) => setTimeout(() => r(undefined), 200))])));
    const failed = results.filter((r) => r !== undefined) as { status: number; body: string }[];
    assert.equal(failed.length, 5, 'the five on the killed sidecar fail at once');
    for (const res of failed) assert.deepEqual([res.status, (JSON.parse(res.body) as { error: string }).error], [502, 'tunnel_disconnected']);
    const after = http(pub.port, 'GET', `/call/${PATH}/echo`);
    await eventually(() => assert.equal(b.requests.length, 6), 5000);
    b.kill();
    assert.equal((await after).status, 502);
  });
  });

test('TUNNEL_DOMAIN: any path on <path_id>.<domain> goes to that tunnel, even paths the node serves itself', async (t) => {
  const node = await startTestNode(t, { TUNNEL_DOMAIN: 'tunnels.example' });
  const backend = await startBackend(t);
  await BaselineSidecar.connect(t, node.port, tunnelToken(node), PATH, { backend: backend.origin });
  const host = { host: `${PATH}.tunnels.example` };
  for (const path of ['/echo?x=1', '/health', '/v1/presence?users=a', '/call/other/echo']) {
    const res = await http(node.port, 'GET', path, { headers: host });
    assert.equal(res.status, 200, `${path}: ${res.body}`);
    const echoed = res.json() as { path: string; headers: Record<string, string> };
    assert.equal(`${echoed.path}`, path.split('?')[0] === '/echo' ? '/echo' : path.split('?')[0]);
    assert.equal(echoed.headers['x-forwarded-host'], host.host);
  }
  // A WebSocket upgrade to /ws on a tunnel host is the back end's /ws, not the node's app endpoint.
  const ws = new WebSocket(`ws://127.0.0.1:${node.port}/ws`, { headers: host });
  t.after(() => ws.terminate());
  const echoed = new Promise<string>((resolve, reject) => {
    ws.once('message', (data: Buffer) => resolve(data.toString()));
    ws.once('error', reject);
  });
  ws.once('open', () => ws.send('via host'));
  assert.equal(await echoed, 'echo:via host');
  // Other hosts keep the node's own routes.
  assert.equal((await http(node.port, 'GET', '/health')).status, 200);
  assert.equal((JSON.parse((await http(node.port, 'GET', '/health')).body) as { status: string }).status, 'healthy');
  assert.equal((await http(node.port, 'GET', '/echo', { headers: { host: 'unknown.tunnels.example' } })).status, 503);
});
