// SPEC §2, §3.1, §3.7: welcome, authentication failures (1008 + reason),
// takeover (4009), per-IP and per-node connection limits (429/503).
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import jwt from 'jsonwebtoken';
import { eventually } from '../helpers/eventually';
import { startTestNode, TEST_SECRET } from '../helpers/node';
import { rawExchange, upgradeLines } from '../helpers/raw-http';
import { TestClient } from '../helpers/ws-client';

describe('connect', () => {
  test('welcome carries user, device, session, node, heartbeat and resumed:false', async (t) => {
    const node = await startTestNode(t);
    const c = await TestClient.welcomed(node.port, node.token({ sub: 'ann', device_id: 'phone' }));
    t.after(() => c.close());
    assert.deepEqual(Object.keys(c.welcome).sort(), ['device', 'heartbeat_ms', 'node', 'resumed', 'session', 'type', 'user']);
    assert.equal(c.welcome.user, 'ann');
    assert.equal(c.welcome.device, 'phone');
    assert.equal(c.welcome.node, node.config.nodeId);
    assert.equal(c.welcome.heartbeat_ms, 30000);
    assert.equal(c.welcome.resumed, false);
    assert.match(String(c.welcome.session), /^[A-Za-z0-9_-]{16,}$/);
  });

  test('user_id works when sub is absent; a missing device_id gets a random one per connection', async (t) => {
    const node = await startTestNode(t);
    const c1 = await TestClient.welcomed(node.port, node.token({ user_id: 'ann' }));
    const c2 = await TestClient.welcomed(node.port, node.token({ user_id: 'ann' }));
    t.after(() => [c1, c2].forEach((c) => c.close()));
    assert.equal(c1.welcome.user, 'ann');
    assert.notEqual(c1.welcome.device, c2.welcome.device);
    // Both stay connected: different devices.
    await c1.request({ type: 'ping' });
    assert.equal(c1.closed, undefined);
  });

  test('the token may come in Authorization: Bearer', async (t) => {
    const node = await startTestNode(t);
    const c = await TestClient.connect(node.port, {}, { authorization: `Bearer ${node.token({ sub: 'ann' })}` });
    t.after(() => c.close());
    assert.equal((await c.next('welcome')).user, 'ann');
  });

  const now = () => Math.floor(Date.now() / 1000);
  const { privateKey: rsaKey, publicKey: rsaPublic } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const cases: [string, string | undefined, string][] = [
    ['no token', undefined, 'token_missing'],
    ['garbage', 'not-a-jwt', 'token_invalid'],
    ['wrong secret', jwt.sign({ sub: 'ann', exp: now() + 60 }, 'another-secret-of-at-least-32-bytes!!', { algorithm: 'HS256' }), 'token_invalid'],
    ['expired', jwt.sign({ sub: 'ann', exp: now() - 60 }, TEST_SECRET, { algorithm: 'HS256' }), 'token_expired'],
    ['not yet valid', jwt.sign({ sub: 'ann', exp: now() + 600, nbf: now() + 300 }, TEST_SECRET, { algorithm: 'HS256' }), 'token_invalid'],
    ['no exp', jwt.sign({ sub: 'ann' }, TEST_SECRET, { algorithm: 'HS256' }), 'token_invalid'],
    ['no user', jwt.sign({ exp: now() + 60 }, TEST_SECRET, { algorithm: 'HS256' }), 'token_invalid'],
    ['alg none', `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'ann', exp: now() + 60 })).toString('base64url')}.`, 'token_invalid'],
    ['RS256 with a key the node does not know', jwt.sign({ sub: 'ann', exp: now() + 60 }, rsaKey, { algorithm: 'RS256' }), 'token_invalid'],
    ['bad user id characters', jwt.sign({ sub: 'a b', exp: now() + 60 }, TEST_SECRET, { algorithm: 'HS256' }), 'token_invalid'],
  ];
  void rsaPublic;
  for (const [name, token, reason] of cases) {
    test(`${name} → accepted, then closed 1008 "${reason}" with nothing sent`, async (t) => {
      const node = await startTestNode(t);
      const c = await TestClient.connect(node.port, token === undefined ? {} : { token });
      t.after(() => c.close());
      assert.deepEqual(await c.waitClosed(), { code: 1008, reason });
      assert.deepEqual(c.frames, []);
      await eventually(() => assert.ok(node.logs.some((l) => l.event === 'auth_failed' && l.reason === reason)));
    });
  }

  test('a second connection of the same (user, device) closes the older with 4009 replaced', async (t) => {
    const node = await startTestNode(t);
    const token = node.token({ sub: 'ann', device_id: 'phone' });
    const older = await TestClient.welcomed(node.port, token);
    const newer = await TestClient.welcomed(node.port, token);
    t.after(() => [older, newer].forEach((c) => c.close()));
    assert.deepEqual(await older.waitClosed(), { code: 4009, reason: 'replaced' });
    assert.equal((await newer.request({ type: 'ping' })).type, 'pong');
    // The newer connection is the device now: messages reach it, and the user stayed online.
    const other = await TestClient.welcomed(node.port, node.token({ sub: 'ben' }));
    t.after(() => other.close());
    assert.equal((await other.request({ type: 'offer', to: 'ann', device: 'phone', payload: 1 })).type, 'ack');
    await newer.next('offer');
    assert.deepEqual((await other.request({ type: 'presence', users: ['ann'] })).users, { ann: 'online' });
    await eventually(() => assert.ok(node.logs.some((l) => l.event === 'takeover')));
  });
});

describe('connection limits', () => {
  test('MAX_CONNECTIONS_PER_IP: one more → HTTP 429, and room again after a close', async (t) => {
    const node = await startTestNode(t, { MAX_CONNECTIONS_PER_IP: '2' });
    const token = node.token({ sub: 'ann' });
    const c1 = await TestClient.welcomed(node.port, token);
    const c2 = await TestClient.welcomed(node.port, token);
    t.after(() => [c1, c2].forEach((c) => c.close()));
    await assert.rejects(TestClient.connect(node.port, { token }), { status: 429 });
    c1.close();
    const c3 = await eventually(() => TestClient.welcomed(node.port, token));
    t.after(() => c3.close());
  });

  test('CONNECT_RATE_PER_IP: too many attempts in a second → HTTP 429', async (t) => {
    const node = await startTestNode(t, { CONNECT_RATE_PER_IP: '3' });
    const token = node.token({ sub: 'ann' });
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => TestClient.connect(node.port, { token })));
    t.after(() => results.forEach((r) => r.status === 'fulfilled' && r.value.close()));
    const refused = results.filter((r) => r.status === 'rejected');
    assert.ok(refused.length >= 3, `refused ${refused.length}`);
    for (const r of refused) assert.equal((r.reason as { status: number }).status, 429);
  });

  test('X-Forwarded-For counts only from TRUSTED_PROXIES', async (t) => {
    const trusted = await startTestNode(t, { MAX_CONNECTIONS_PER_IP: '1', TRUSTED_PROXIES: '127.0.0.1/8' });
    const token = trusted.token({ sub: 'ann' });
    // Behind a trusted proxy, two clients with different forwarded addresses are two IPs.
    const a = await TestClient.connect(trusted.port, { token }, { 'x-forwarded-for': '198.51.100.1' });
    const b = await TestClient.connect(trusted.port, { token }, { 'x-forwarded-for': '198.51.100.2' });
    t.after(() => [a, b].forEach((c) => c.close()));
    await assert.rejects(TestClient.connect(trusted.port, { token }, { 'x-forwarded-for': '198.51.100.1' }), { status: 429 });

    // From an untrusted peer the header is ignored: the socket address counts.
    const untrusted = await startTestNode(t, { MAX_CONNECTIONS_PER_IP: '1' });
    const c = await TestClient.connect(untrusted.port, { token: untrusted.token({ sub: 'ann' }) }, { 'x-forwarded-for': '198.51.100.1' });
    t.after(() => c.close());
    await assert.rejects(TestClient.connect(untrusted.port, { token }, { 'x-forwarded-for': '198.51.100.9' }), { status: 429 });
  });

  test('X-Forwarded-For on several lines (HAProxy option forwardfor): the line the trusted proxy appended counts', async (t) => {
    const node = await startTestNode(t, { MAX_CONNECTIONS_PER_IP: '1', TRUSTED_PROXIES: '127.0.0.1' });
    const token = node.token({ sub: 'ann' });
    // Sent raw: HTTP clients merge repeated lines, HAProxy does not. Each client forges the same
    // first line; the proxy's own line (last) names three clients, the first and third the same.
    const statuses: number[] = [];
    for (const appended of ['198.51.100.1', '198.51.100.2', '198.51.100.1']) {
      const lines = upgradeLines(`/ws?token=${token}`, ['X-Forwarded-For: 198.51.100.7', `X-Forwarded-For: ${appended}`]);
      statuses.push((await rawExchange(t, node.port, lines)).status);
    }
    assert.deepEqual(statuses, [101, 101, 429]);
  });

  test('a socket refused for its token gives its slot back when it is gone', async (t) => {
    const node = await startTestNode(t, { MAX_CONNECTIONS: '1', MAX_CONNECTIONS_PER_IP: '1' });
    // The slot comes back once uWS reports the socket closed, a moment after the client saw the close frame.
    for (let i = 0; i < 3; i++) {
      const refused = await eventually(() => TestClient.connect(node.port, { token: 'not-a-jwt' }));
      assert.deepEqual(await refused.waitClosed(), { code: 1008, reason: 'token_invalid' });
    }
    const c = await eventually(() => TestClient.welcomed(node.port, node.token({ sub: 'ann' })));
    t.after(() => c.close());
  });

  test('MAX_CONNECTIONS: one more → HTTP 503', async (t) => {
    const node = await startTestNode(t, { MAX_CONNECTIONS: '2' });
    const c1 = await TestClient.welcomed(node.port, node.token({ sub: 'a' }));
    const c2 = await TestClient.welcomed(node.port, node.token({ sub: 'b' }));
    t.after(() => [c1, c2].forEach((c) => c.close()));
    await assert.rejects(TestClient.connect(node.port, { token: node.token({ sub: 'c' }) }), { status: 503 });
    await eventually(() => assert.ok(node.logs.some((l) => l.event === 'connection_rejected')));
  });
});
