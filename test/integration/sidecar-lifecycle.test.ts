// `switchboard tunnel`'s life on its socket, against a fake Telephone server
// (test/helpers/fake-telephone-server.ts) and a real HTTP back end: the join
// and its extensions, heartbeats, token refresh, reconnects, make-before-break
// on a drain, and the CLI's exit codes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import jwt from 'jsonwebtoken';
import { eventually } from '../helpers/eventually';
import { FakeTelephoneServer, tunnelToken, type Exchange } from '../helpers/fake-telephone-server';
import { runCli, spawnCli } from '../helpers/process';
import { PATH_ID, readBody, startHttpBackend, startSidecar } from '../helpers/sidecar';

const echo = (t: Parameters<typeof startHttpBackend>[0]) =>
  startHttpBackend(t, (req, res) => {
    void readBody(req).then((body) => {
      res.setHeader('content-type', 'text/plain');
      res.end(`${req.method} ${req.url} ${body.toString('utf8')}`);
    });
  });

test('joins telephone:<path_id> asking for binary_body and stream, and works with none granted (baseline)', async (t) => {
  const server = await FakeTelephoneServer.start(t);
  const backend = await echo(t);
  const token = tunnelToken(PATH_ID);
  const { raw } = await startSidecar(t, server, backend.url, { token });
  const socket = await server.joined(0);
  const join = socket.frames.find((f) => f.event === 'phx_join');
  assert.deepEqual(join, { joinRef: join?.ref, ref: join?.ref, topic: `telephone:${PATH_ID}`, event: 'phx_join', payload: { extensions: ['binary_body', 'stream', 'binary_frames'] } });
  assert.deepEqual(server.tokensSeen, [token]);
  assert.deepEqual(socket.granted, []);

  const res = await socket.request({ method: 'POST', path: '/echo', query: 'a=1&b=2', headers: { 'content-type': 'text/plain' }, body: Buffer.from('héllo') }).done();
  assert.equal(res.form, 'whole');
  assert.equal(res.base64, false, 'no binary_body granted: the baseline text body');
  assert.equal(res.status, 200);
  assert.equal(res.body.toString('utf8'), 'POST /echo?a=1&b=2 héllo');
  assert.ok(res.headers.some(([name, value]) => name === 'Content-Type' && value === 'text/plain'), JSON.stringify(res.headers));

  // Never the token, never a query string in the logs.
  const logs = raw.join('\n');
  assert.ok(!logs.includes(token), 'the token was logged');
  assert.ok(!logs.includes('a=1'), 'a query string was logged');
  assert.ok(!logs.includes(token.split('.')[2]!), "the token's signature was logged");
});

test('a request pushed right behind the join reply (often in the same read) is served', async (t) => {
  const server = await FakeTelephoneServer.start(t, { grant: ['binary_body', 'stream'] });
  const backend = await echo(t);
  const first: Exchange[] = [];
  server.onJoin = (socket) => first.push(socket.request({ method: 'GET', path: '/first' }));
  await startSidecar(t, server, backend.url);
  await server.joined(0);
  const res = await first[0]!.done();
  assert.equal(res.body.toString(), 'GET /first ');
});

test('every message after the join carries the join ref; heartbeats go on the channel topic', async (t) => {
  const server = await FakeTelephoneServer.start(t, { grant: ['binary_body', 'stream'] });
  const backend = await echo(t);
  await startSidecar(t, server, backend.url, { heartbeatIntervalMs: 30 });
  const socket = await server.joined(0);
  assert.deepEqual(socket.granted, ['binary_body', 'stream']);
  await eventually(() => assert.ok(socket.heartbeats.length >= 3, `${socket.heartbeats.length} heartbeats`));
  const beats = socket.frames.filter((f) => f.event === 'heartbeat');
  const now = Math.floor(Date.now() / 1000);
  for (const beat of beats) {
    assert.equal(beat.topic, `telephone:${PATH_ID}`);
    assert.equal(beat.joinRef, socket.joinRef);
    assert.ok(Math.abs((beat.payload.ts as number) - now) < 60, 'ts is the unix time in seconds');
  }
  const refs = socket.frames.map((f) => Number(f.ref));
  assert.deepEqual(refs, [...refs].sort((a, b) => a - b), 'refs grow');
  assert.equal(new Set(refs).size, refs.length, 'refs are unique');
});

test('heartbeats that are never acknowledged: the sidecar drops the socket and connects again', async (t) => {
  const server = await FakeTelephoneServer.start(t);
  const backend = await echo(t);
  await startSidecar(t, server, backend.url, { heartbeatIntervalMs: 30 });
  const first = await server.joined(0);
  first.ackHeartbeats = false;
  await eventually(() => assert.ok(first.closed !== undefined, 'the unacknowledged socket is still open'));
  const second = await server.joined(1);
  const res = await second.request({ method: 'GET', path: '/after' }).done();
  assert.equal(res.body.toString(), 'GET /after ');
});

test('refreshes its token at half-life and connects with the new one afterwards', async (t) => {
  const server = await FakeTelephoneServer.start(t);
  const backend = await echo(t);
  const now = Math.floor(Date.now() / 1000);
  // A 2 s token: refreshed 1 s after issue.
  const token = tunnelToken(PATH_ID, { iat: now, exp: now + 2 });
  const { sidecar, raw } = await startSidecar(t, server, backend.url, { token });
  const first = await server.joined(0);
  await eventually(() => assert.equal(server.refreshes, 1), 5000);
  const refreshed = server.issued[0]!;
  await eventually(() => assert.equal(sidecar.currentToken, refreshed));
  const claims = jwt.decode(refreshed, { json: true });
  assert.equal(claims?.path_id, PATH_ID);

  first.ws.terminate();
  await server.joined(1);
  assert.equal(server.tokensSeen.at(-1), refreshed, 'the reconnect used the refreshed token');
  assert.equal(server.refreshes, 1, 'a 3600 s token is not refreshed again at once');
  assert.ok(!raw.join('\n').includes(refreshed), 'the refreshed token was logged');
});

test('reconnects after the server drops the socket, with backoff, and serves on the new socket', async (t) => {
  const server = await FakeTelephoneServer.start(t);
  const backend = await echo(t);
  const { sidecar } = await startSidecar(t, server, backend.url);
  const first = await server.joined(0);
  // While the server refuses (a node restarting), the sidecar keeps trying.
  server.refuseWith = 503;
  first.ws.terminate();
  await eventually(() => assert.ok(server.refused >= 3, `${server.refused} refused attempts`));
  assert.equal(sidecar.links.active, undefined);
  // A 403 after having been live is not fatal either: the token may be refreshed elsewhere, the node may be misconfigured for a while.
  server.refuseWith = 403;
  const refusedBefore = server.refused;
  await eventually(() => assert.ok(server.refused >= refusedBefore + 2));
  server.refuseWith = undefined;
  const second = await eventually(() => {
    const joined = server.sockets.filter((s) => s.isJoined);
    assert.equal(joined.length, 2);
    return joined[1]!;
  });
  const res = await second.request({ method: 'GET', path: '/again' }).done();
  assert.equal(res.body.toString(), 'GET /again ');
});

test('make-before-break: on draining the sidecar joins a second socket first; the old one finishes its request, then closes', async (t) => {
  const server = await FakeTelephoneServer.start(t, { grant: ['binary_body', 'stream'] });
  let release: (() => void) | undefined;
  const backend = await startHttpBackend(t, (req, res) => {
    if (req.url === '/slow') release = () => res.end('slow done');
    else res.end(`fast ${req.url}`);
  });
  const { sidecar } = await startSidecar(t, server, backend.url);
  const old = await server.joined(0);
  const slow = old.request({ method: 'GET', path: '/slow' });
  await eventually(() => assert.ok(release !== undefined, 'the back end has not seen /slow'));

  old.push('draining', { reconnect_after_ms: 0 });
  const fresh = await server.joined(1);
  assert.equal(old.closed, undefined, 'the old socket was let go before its request finished');
  await eventually(() => assert.deepEqual(sidecar.links, { active: 2, draining: 1 }));
  const fast = await fresh.request({ method: 'GET', path: '/fast' }).done();
  assert.equal(fast.body.toString(), 'fast /fast');

  release!();
  const res = await slow.done();
  assert.equal(res.body.toString(), 'slow done', 'the in-flight request finished on the old socket');
  await eventually(() => assert.deepEqual(old.closed, { code: 1000, reason: 'replaced' }));
  await eventually(() => assert.deepEqual(sidecar.links, { active: 2, draining: 0 }));
  assert.equal(server.sockets.length, 2);
});

test('a close 1012 without a drain first: connects again at once', async (t) => {
  const server = await FakeTelephoneServer.start(t);
  const backend = await echo(t);
  // A backoff this long would time the test out: 1012 must skip it.
  await startSidecar(t, server, backend.url, { backoff: { baseMs: 60_000, capMs: 60_000 } });
  const first = await server.joined(0);
  first.ws.close(1012, 'draining');
  await server.joined(1, 3000);
});

test('CLI: a token the server refuses at the first connect → exit 1 with a clear message', async (t) => {
  const server = await FakeTelephoneServer.start(t);
  const backend = await echo(t);
  const bad = jwt.sign({ path_id: PATH_ID, iat: Math.floor(Date.now() / 1000) }, 'not-the-server-secret-at-all-0123456789');
  const res = await runCli(t, { SWITCHBOARD_TOKEN: bad }, ['tunnel', '--server', server.url, '--to', backend.url]);
  assert.equal(res.code, 1, `exit ${res.code}; stderr: ${res.stderr}`);
  assert.match(res.stderr, /refused the token \(HTTP 403\)/);
  assert.ok(!res.stderr.includes(bad) && !res.stdout.includes(bad), 'the token was printed');
  assert.equal(server.refused, 1);
});

test('CLI: bad settings → exit 2, one line per problem', async (t) => {
  const res = await runCli(t, {}, ['tunnel', '--server', 'ftp://x', '--token', 'abc', '--heartbeat-interval-ms', 'soon']);
  assert.equal(res.code, 2, res.stderr);
  const lines = res.stderr.split('\n').filter((l) => l !== '');
  assert.deepEqual(
    lines.map((l) => l.replace(/ (must|is|has).*$/, '')),
    ['switchboard tunnel: --server (SWITCHBOARD_SERVER)', 'switchboard tunnel: --to (TUNNEL_TO)', 'switchboard tunnel: --token (SWITCHBOARD_TOKEN)', 'switchboard tunnel: --heartbeat-interval-ms (TUNNEL_HEARTBEAT_INTERVAL_MS)'],
  );
});

test('CLI: relays a request end to end and exits 0 on SIGTERM', async (t) => {
  const server = await FakeTelephoneServer.start(t);
  const backend = await echo(t);
  const proc = spawnCli(t, { SWITCHBOARD_SERVER: server.url, SWITCHBOARD_TOKEN: tunnelToken(PATH_ID), TUNNEL_TO: backend.url }, ['tunnel']);
  const socket = await server.joined(0);
  const res = await socket.request({ method: 'GET', path: '/cli' }).done();
  assert.equal(res.body.toString(), 'GET /cli ');
  await proc.waitForLine(/"msg":"tunnel live"/);
  proc.kill('SIGTERM');
  const exited = await proc.exited;
  assert.equal(exited.code, 0, proc.stderr.join('\n'));
  await eventually(() => assert.equal(socket.closed?.code, 1000));
});
