// Tunnels through a deploy and a crash: a node draining hands its sidecar over
// to another node without one failed request (make-before-break), and a node
// killed with -9 stops being routed to within PRESENCE_TTL_MS, its in-flight
// requests failing with 502 rather than hanging.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import jwt from 'jsonwebtoken';
import WebSocket from 'ws';
import { startBackend } from '../helpers/backend';
import { eventually } from '../helpers/eventually';
import { HandSidecar } from '../helpers/hand-sidecar';
import { http } from '../helpers/http';
import { startTestNode, TEST_SECRET } from '../helpers/node';
import { startOwnSidecar } from '../helpers/own-sidecar';
import { spawnNode } from '../helpers/process';
import { startRedis } from '../helpers/redis';
import { startTcpBalancer } from '../helpers/tcp-balancer';

const PATH = 'deployed';
const token = () => {
  const now = Math.floor(Date.now() / 1000);
  return jwt.sign({ sub: 'tunnel', jti: 'j', path_id: PATH, roles: ['tunnel'], iat: now, exp: now + 3600 }, TEST_SECRET);
};
const tunnels = async (port: number) => (JSON.parse((await http(port, 'GET', '/health')).body) as { tunnels: number }).tunnels;

test('a draining node hands its sidecar to another node with no request lost (make-before-break)', async (t) => {
  const redis = await startRedis(t);
  const env = { REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix, DRAIN_SPREAD_MS: '500', SHUTDOWN_TIMEOUT_MS: '10000' };
  const a = await startTestNode(t, env);
  const b = await startTestNode(t, env);
  const balancer = await startTcpBalancer(t, [a.port, b.port]);
  const backend = await startBackend(t);
  // The balancer sends the first connection to A.
  await startOwnSidecar(t, balancer.port, token(), backend.origin);
  assert.deepEqual([await tunnels(a.port), await tunnels(b.port)], [1, 0]);

  // Public traffic on B all along (routed to the sidecar on A, then to its successor), and one slow request in flight on A's socket.
  // Each answer as `status` (and its body when it is not 200, so a failure says which error).
  const results: string[] = [];
  let running = true;
  const traffic = (async () => {
    while (running) {
      const { status, body } = await http(b.port, 'GET', `/call/${PATH}/echo`);
      results.push(status === 200 ? '200' : `${status} ${body.slice(0, 200)}`);
    }
  })();
  const slow = http(b.port, 'GET', `/call/${PATH}/slow?ms=800`);
  await eventually(() => assert.ok(results.length >= 20));

  await a.shutdown();
  await eventually(async () => assert.equal(await tunnels(b.port), 1));
  const after = results.length;
  await eventually(() => assert.ok(results.length >= after + 20));
  running = false;
  await traffic;
  assert.equal((await slow).status, 200, 'the request in flight on the old socket finished there');
  const failed = results.filter((answer) => answer !== '200');
  t.diagnostic(`${results.length} requests across the drain, ${failed.length} failed`);
  assert.deepEqual(failed, []);
});

test('a request that crosses a drained sidecar\'s close (1000, nothing in flight) goes to its replacement, not to a 502', async (t) => {
  const redis = await startRedis(t);
  // A drain with a spread tells sidecars first (with DRAIN_SPREAD_MS=0 everything closes 1001 at once).
  const env = { REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix, DRAIN_SPREAD_MS: '500', SHUTDOWN_TIMEOUT_MS: '10000' };
  const a = await startTestNode(t, env);
  const b = await startTestNode(t, env);
  const extensions = ['binary_body', 'stream'];
  const { sidecar: old } = await HandSidecar.join(t, a, PATH, extensions);
  await eventually(async () => assert.equal((await tunnels(a.port)), 1));

  // One request held on the old socket keeps node A's drain waiting; the node tells the sidecar.
  const held = http(b.port, 'GET', `/call/${PATH}/held`);
  const heldId = (await old.next('proxy_req'))[4].request_id as string;
  const shutdown = a.shutdown();
  await old.next('draining');
  // A second request reaches the old socket while its replacement connects elsewhere…
  const crossing = http(b.port, 'GET', `/call/${PATH}/crossing`);
  await old.next('proxy_req');
  const { sidecar: replacement } = await HandSidecar.join(t, b, PATH, extensions);
  // …and the sidecar, done with what it had started, closes the old socket as one that never saw it.
  old.respond(heldId, 200, 'held');
  old.ws.close(1000, 'replaced');
  const moved = (await replacement.next('proxy_req'))[4];
  assert.equal(moved.path, '/crossing');
  replacement.respond(moved.request_id as string, 200, 'from the replacement');

  assert.deepEqual([(await held).status, (await held).body], [200, 'held']);
  assert.deepEqual([(await crossing).status, (await crossing).body], [200, 'from the replacement']);
  await shutdown;
});

test('a node killed with -9: its in-flight requests get 502 and its sidecars stop being routed to within PRESENCE_TTL_MS', async (t) => {
  const redis = await startRedis(t);
  const env = { REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix, PRESENCE_TTL_MS: '3000' };
  const a = await spawnNode(t, { ...env, JWT_SECRET: TEST_SECRET, NODE_ID: 'doomed' });
  const b = await startTestNode(t, env);
  const backend = await startBackend(t);
  await startOwnSidecar(t, a.port, token(), backend.origin);
  assert.equal((await http(b.port, 'GET', `/call/${PATH}/echo`)).status, 200);

  const inFlight = http(b.port, 'GET', `/call/${PATH}/hang`);
  await eventually(() => assert.equal(backend.hanging, 1));
  const killedAt = performance.now();
  a.kill('SIGKILL');
  const failed = await inFlight;
  assert.deepEqual([failed.status, (failed.json() as { error: string }).error], [502, 'tunnel_disconnected']);
  const failedAfter = performance.now() - killedAt;
  await eventually(async () => assert.equal((await http(b.port, 'GET', `/call/${PATH}/echo`)).status, 503), 3000 + 2000);
  t.diagnostic(`in flight failed ${Math.round(failedAfter)} ms after kill -9; no_tunnel after ${Math.round(performance.now() - killedAt)} ms (PRESENCE_TTL_MS 3000)`);
});

test('a draining node finishes the public requests it is relaying to another node before it leaves the bus', async (t) => {
  const redis = await startRedis(t);
  const env = { REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix, DRAIN_SPREAD_MS: '0', SHUTDOWN_TIMEOUT_MS: '10000' };
  const sidecarNode = await startTestNode(t, env);
  const leaving = await startTestNode(t, env);
  const backend = await startBackend(t);
  await startOwnSidecar(t, sidecarNode.port, token(), backend.origin);
  const slow = http(leaving.port, 'GET', `/call/${PATH}/slow?ms=600`);
  await eventually(() => assert.equal(backend.slow, 1));
  const stopped = leaving.shutdown();
  const res = await slow;
  await stopped;
  assert.deepEqual([res.status, res.body], [200, 'slow']);
});

test('a draining node closes the public WebSockets it relays with 1012, and the back end hears the client went away', async (t) => {
  const node = await startTestNode(t, { DRAIN_SPREAD_MS: '200' });
  const backend = await startBackend(t);
  await startOwnSidecar(t, node.port, token(), backend.origin);
  const ws = new WebSocket(`ws://127.0.0.1:${node.port}/call/${PATH}/ws`);
  t.after(() => ws.terminate());
  let closed: number | undefined;
  ws.on('close', (code) => (closed = code));
  ws.on('message', () => undefined);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  ws.send('hi');
  await node.shutdown();
  await eventually(() => assert.equal(closed, 1012));
  await eventually(() => assert.equal(backend.wsCloses.length, 1));
});
