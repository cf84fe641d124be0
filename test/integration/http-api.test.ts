// SPEC §4 (with §1 error bodies and §2 token rules): POST /v1/publish and
// GET /v1/presence for back ends holding an admin token.
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { describe, test } from 'node:test';
import jwt from 'jsonwebtoken';
import { eventually } from '../helpers/eventually';
import { http, type HttpResult } from '../helpers/http';
import { startTestNode, type TestNode } from '../helpers/node';
import { rawExchange } from '../helpers/raw-http';
import { TestClient, type Frame } from '../helpers/ws-client';

const MiB = 1024 * 1024;
const now = () => Math.floor(Date.now() / 1000);

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const adminToken = (node: TestNode) => node.token({ sub: 'backend', roles: ['admin'] });

function publish(node: TestNode, body: unknown, token = adminToken(node)): Promise<HttpResult> {
  return http(node.port, 'POST', '/v1/publish', {
    headers: { ...bearer(token), 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

function presence(node: TestNode, query: string, token = adminToken(node)): Promise<HttpResult> {
  return http(node.port, 'GET', `/v1/presence${query}`, { headers: bearer(token) });
}

/** Every HTTP error is JSON `{"error":"<code>","message":"..."}` (SPEC §1). */
function assertErrorBody(res: HttpResult, status: number): void {
  assert.equal(res.status, status, res.body);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const body = res.json() as Record<string, unknown>;
  assert.equal(typeof body.error, 'string', res.body);
  assert.match(body.error as string, /^[a-z_]+$/);
  assert.equal(typeof body.message, 'string', res.body);
}

/**
 * A ping round trip: the server writes frames to a socket in order, so once
 * the pong is back, every event the server sent before it has arrived too.
 */
async function settle(...clients: TestClient[]): Promise<void> {
  for (const c of clients) assert.equal((await c.request({ type: 'ping' }, 'pong')).type, 'pong');
}

const eventsOf = (c: TestClient): Frame[] => c.all('event');

/**
 * Sends raw bytes on a fresh TCP connection and returns what came back. The
 * server may answer 413 and hang up before the whole body is written: write
 * errors (EPIPE, ECONNRESET) after that are expected, the reply is what counts.
 */
function rawRequest(port: number, head: string, body: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const done = () => resolve(Buffer.concat(chunks).toString('latin1'));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => socket.destroy());
    socket.on('close', done);
    socket.on('connect', () => {
      socket.write(head);
      socket.end(body);
    });
  });
}

describe('POST /v1/publish', () => {
  const event = 'call-initiated';
  const payload = { call_id: 'c-42', from: { name: 'Zoë', n: [1, 2.5, null] }, ok: true };
  const expected = { type: 'event', event, payload };

  test('to a user: every device of that user gets the event frame; others get nothing; 202 {accepted:true}', async (t) => {
    const node = await startTestNode(t);
    const phone = await TestClient.welcomed(node.port, node.token({ sub: 'ann', device_id: 'phone' }));
    const laptop = await TestClient.welcomed(node.port, node.token({ sub: 'ann', device_id: 'laptop' }));
    const other = await TestClient.welcomed(node.port, node.token({ sub: 'ben', device_id: 'b1' }));
    t.after(() => [phone, laptop, other].forEach((c) => c.close()));

    const res = await publish(node, { to: 'ann', event, payload });
    assert.equal(res.status, 202, res.body);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.deepEqual(res.json(), { accepted: true });

    assert.deepEqual(await phone.next('event'), expected);
    assert.deepEqual(await laptop.next('event'), expected);
    await settle(phone, laptop, other);
    assert.equal(eventsOf(phone).length, 1);
    assert.equal(eventsOf(laptop).length, 1);
    assert.deepEqual(eventsOf(other), []);
  });

  test('to a user and device: only that device gets it', async (t) => {
    const node = await startTestNode(t);
    const phone = await TestClient.welcomed(node.port, node.token({ sub: 'ann', device_id: 'phone' }));
    const laptop = await TestClient.welcomed(node.port, node.token({ sub: 'ann', device_id: 'laptop' }));
    t.after(() => [phone, laptop].forEach((c) => c.close()));

    const res = await publish(node, { to: 'ann', device: 'laptop', event, payload });
    assert.equal(res.status, 202, res.body);
    assert.deepEqual(res.json(), { accepted: true });
    assert.deepEqual(await laptop.next('event'), expected);
    await settle(phone, laptop);
    assert.equal(eventsOf(laptop).length, 1);
    assert.deepEqual(eventsOf(phone), []);
  });

  test('to a room: members only (not a non-member, not another device of a member)', async (t) => {
    const node = await startTestNode(t);
    const ann = await TestClient.welcomed(node.port, node.token({ sub: 'ann', device_id: 'a1' }));
    const annElsewhere = await TestClient.welcomed(node.port, node.token({ sub: 'ann', device_id: 'a2' }));
    const ben = await TestClient.welcomed(node.port, node.token({ sub: 'ben', device_id: 'b1' }));
    const cat = await TestClient.welcomed(node.port, node.token({ sub: 'cat', device_id: 'c1' }));
    t.after(() => [ann, annElsewhere, ben, cat].forEach((c) => c.close()));
    await ann.request({ type: 'subscribe', room: 'standup' }, 'subscribed');
    await ben.request({ type: 'subscribe', room: 'standup' }, 'subscribed');
    await cat.request({ type: 'subscribe', room: 'other-room' }, 'subscribed');

    const res = await publish(node, { room: 'standup', event, payload });
    assert.equal(res.status, 202, res.body);
    assert.deepEqual(res.json(), { accepted: true });
    assert.deepEqual(await ann.next('event'), expected);
    assert.deepEqual(await ben.next('event'), expected);
    await settle(ann, annElsewhere, ben, cat);
    assert.equal(eventsOf(ann).length, 1);
    assert.equal(eventsOf(ben).length, 1);
    assert.deepEqual(eventsOf(annElsewhere), []);
    assert.deepEqual(eventsOf(cat), []);
  });

  test('broadcast: every connection gets it exactly once', async (t) => {
    const node = await startTestNode(t);
    const clients = await Promise.all(
      [
        { sub: 'ann', device_id: 'a1' },
        { sub: 'ann', device_id: 'a2' },
        { sub: 'ben' },
        { sub: 'cat', rooms: ['nothing-*'] },
      ].map((claims) => TestClient.welcomed(node.port, node.token(claims))),
    );
    t.after(() => clients.forEach((c) => c.close()));

    const res = await publish(node, { broadcast: true, event: 'maintenance', payload: { at: '02:00' } });
    assert.equal(res.status, 202, res.body);
    assert.deepEqual(res.json(), { accepted: true });
    for (const c of clients) assert.deepEqual(await c.next('event'), { type: 'event', event: 'maintenance', payload: { at: '02:00' } });
    await settle(...clients);
    for (const c of clients) assert.equal(eventsOf(c).length, 1);
  });

  const badBodies: [string, string][] = [
    ['bad JSON', '{"to":"ann",'],
    ['empty body', ''],
    ['non-object: array', '[{"to":"ann","event":"x"}]'],
    ['non-object: string', '"hello"'],
    ['non-object: number', '42'],
    ['non-object: null', 'null'],
    ['missing event', JSON.stringify({ to: 'ann', payload: 1 })],
    ['event not a string', JSON.stringify({ to: 'ann', event: 7 })],
    ['empty event name', JSON.stringify({ to: 'ann', event: '' })],
    ['event name with a space', JSON.stringify({ to: 'ann', event: 'call initiated' })],
    ['event name of 129 chars', JSON.stringify({ to: 'ann', event: 'e'.repeat(129) })],
    ['no target', JSON.stringify({ event: 'x', payload: 1 })],
    ['two targets: to + room', JSON.stringify({ to: 'ann', room: 'r', event: 'x' })],
    ['two targets: room + broadcast', JSON.stringify({ room: 'r', broadcast: true, event: 'x' })],
    ['broadcast:false', JSON.stringify({ broadcast: false, event: 'x' })],
    ['broadcast:"true"', JSON.stringify({ broadcast: 'true', event: 'x' })],
    ['bad user id', JSON.stringify({ to: 'ann smith', event: 'x' })],
    ['user id not a string', JSON.stringify({ to: 12, event: 'x' })],
    ['user id too long', JSON.stringify({ to: 'u'.repeat(129), event: 'x' })],
    ['bad device id', JSON.stringify({ to: 'ann', device: 'ph one', event: 'x' })],
    ['bad room', JSON.stringify({ room: 'no/slashes', event: 'x' })],
    ['empty room', JSON.stringify({ room: '', event: 'x' })],
  ];
  for (const [name, body] of badBodies) {
    test(`400 for ${name}`, async (t) => {
      const node = await startTestNode(t);
      assertErrorBody(await publish(node, body), 400);
    });
  }

  test('a 400 delivers nothing', async (t) => {
    const node = await startTestNode(t);
    const ann = await TestClient.welcomed(node.port, node.token({ sub: 'ann' }));
    t.after(() => ann.close());
    assertErrorBody(await publish(node, { to: 'ann', room: 'r', event: 'x' }), 400);
    assertErrorBody(await publish(node, { broadcast: false, event: 'x' }), 400);
    await settle(ann);
    assert.deepEqual(eventsOf(ann), []);
  });

  test('413 for a body over 1 MiB (declared by Content-Length); the node still serves afterwards', async (t) => {
    const node = await startTestNode(t);
    const ann = await TestClient.welcomed(node.port, node.token({ sub: 'ann' }));
    t.after(() => ann.close());
    const body = Buffer.alloc(MiB + 1, 'a');
    const head =
      `POST /v1/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${adminToken(node)}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    const reply = await rawRequest(node.port, head, body);
    assert.match(reply, /^HTTP\/1\.1 413 /);
    const json = JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
    assert.equal(typeof json.error, 'string');
    assert.equal(typeof json.message, 'string');

    const after = await publish(node, { to: 'ann', event: 'still-here', payload: 1 });
    assert.equal(after.status, 202, after.body);
    assert.deepEqual(await ann.next('event'), { type: 'event', event: 'still-here', payload: 1 });
    assert.equal((await http(node.port, 'GET', '/live')).status, 200);
  });

  test('413 for a chunked body that grows past 1 MiB; the node still serves afterwards', async (t) => {
    const node = await startTestNode(t);
    const body = Buffer.alloc(MiB + 1, 'a');
    const chunked = Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]);
    const head =
      `POST /v1/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${adminToken(node)}\r\n` +
      `Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`;
    const reply = await rawRequest(node.port, head, chunked);
    assert.match(reply, /^HTTP\/1\.1 413 /);
    const after = await publish(node, { broadcast: true, event: 'still-here' });
    assert.equal(after.status, 202, after.body);
  });

  test('a body of exactly 1 MiB is accepted', async (t) => {
    const node = await startTestNode(t);
    const prefix = '{"broadcast":true,"event":"big","payload":"';
    const suffix = '"}';
    const body = prefix + 'x'.repeat(MiB - prefix.length - suffix.length) + suffix;
    assert.equal(Buffer.byteLength(body), MiB);
    const res = await publish(node, body);
    assert.equal(res.status, 202, res.body);
  });
});

describe('GET /v1/presence', () => {
  test('200 {"users":{...}} with online/offline', async (t) => {
    const node = await startTestNode(t);
    const ann = await TestClient.welcomed(node.port, node.token({ sub: 'ann', device_id: 'a1' }));
    t.after(() => ann.close());
    const res = await presence(node, '?users=ann,ben');
    assert.equal(res.status, 200, res.body);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.deepEqual(res.json(), { users: { ann: 'online', ben: 'offline' } });

    ann.close();
    await ann.waitClosed();
    // The close reaches the server after the client saw it; poll until presence follows.
    await eventually(async () => assert.deepEqual((await presence(node, '?users=ann')).json(), { users: { ann: 'offline' } }));
  });

  test('100 users is the most a query may list', async (t) => {
    const node = await startTestNode(t);
    const users = Array.from({ length: 100 }, (_, i) => `u${i}`);
    const res = await presence(node, `?users=${users.join(',')}`);
    assert.equal(res.status, 200, res.body);
    const body = res.json() as { users: Record<string, string> };
    assert.equal(Object.keys(body.users).length, 100);
    for (const u of users) assert.equal(body.users[u], 'offline');
  });

  const bad: [string, string][] = [
    ['no users parameter', ''],
    ['empty users', '?users='],
    ['only commas', '?users=,,'],
    ['101 users', `?users=${Array.from({ length: 101 }, (_, i) => `u${i}`).join(',')}`],
    ['an id with a space', '?users=ann,ben%20smith'],
    ['an id with a slash', '?users=ann%2Fben'],
    ['an id of 129 chars', `?users=${'u'.repeat(129)}`],
  ];
  for (const [name, query] of bad) {
    test(`400 for ${name}`, async (t) => {
      const node = await startTestNode(t);
      assertErrorBody(await presence(node, query), 400);
    });
  }
});

describe('admin authentication (both endpoints)', () => {
  const header = (v: string) => ({ authorization: v });

  // [name, the Authorization header (none: {}), expected status]
  const cases: [string, (node: TestNode) => Record<string, string>, 401 | 403][] = [
    ['no Authorization header', () => ({}), 401],
    ['empty Bearer', () => header('Bearer '), 401],
    ['not a Bearer scheme', (node) => header(`Basic ${adminToken(node)}`), 401],
    ['garbage token', () => header('Bearer not-a-jwt'), 401],
    ['expired admin token', (node) => bearer(node.token({ sub: 'backend', roles: ['admin'], exp: now() - 600 })), 401],
    ['admin token signed with another secret', () => bearer(jwtWithOtherSecret()), 401],
    ['alg:none token with roles admin', () => bearer(unsigned({ alg: 'none', typ: 'JWT' }, { sub: 'backend', roles: ['admin'], exp: now() + 600 })), 401],
    ['valid non-admin token', (node) => bearer(node.token({ sub: 'ann' })), 403],
    ['valid token with only the tunnel role', (node) => bearer(node.token({ sub: 'side', roles: ['tunnel'], path_id: 'p1' })), 403],
  ];

  for (const [name, headers, status] of cases) {
    test(`${name} → ${status} on publish and presence, and nothing is delivered`, async (t) => {
      const node = await startTestNode(t);
      const ann = await TestClient.welcomed(node.port, node.token({ sub: 'ann' }));
      t.after(() => ann.close());
      const h = headers(node);
      assertErrorBody(
        await http(node.port, 'POST', '/v1/publish', {
          headers: { ...h, 'content-type': 'application/json' },
          body: JSON.stringify({ broadcast: true, event: 'x', payload: 1 }),
        }),
        status,
      );
      assertErrorBody(await http(node.port, 'GET', '/v1/presence?users=ann', { headers: h }), status);
      await settle(ann);
      assert.deepEqual(eventsOf(ann), []);
    });
  }

  test('a refused POST is answered before its body is read: the body announced, barely begun, never finished', async (t) => {
    const node = await startTestNode(t);
    const cases: [string, string[], number, number][] = [
      ['no token', [], 1_000_000, 401],
      ['no admin role', [`Authorization: Bearer ${node.token({ sub: 'ann' })}`], 1_000_000, 403],
      // The token is looked at before the size: an unauthorised caller learns nothing else.
      ['no token, over 1 MiB', [], 2 * MiB, 401],
    ];
    for (const [name, authorization, length, status] of cases) {
      const lines = ['POST /v1/publish HTTP/1.1', 'Host: 127.0.0.1', ...authorization, 'Content-Type: application/json', `Content-Length: ${length}`];
      const reply = await rawExchange(t, node.port, lines, '{"broadcast":true,');
      assert.equal(reply.status, status, name);
      assert.equal((JSON.parse(reply.body) as { error: string }).error, status === 401 ? 'unauthorized' : 'forbidden', name);
    }
    assert.equal((await publish(node, { broadcast: true, event: 'still-here' })).status, 202);
  });

  test('with JWT_PUBLIC_KEY: RS256 admin token accepted; HS256 "signed" with the public key as secret → 401; alg:none → 401', async (t) => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const node = await startTestNode(t, { JWT_SECRET: '', JWT_PUBLIC_KEY: pem });
    const claims = { sub: 'backend', roles: ['admin'], exp: now() + 600 };

    const good = jwt.sign(claims, privateKey, { algorithm: 'RS256' });
    assert.equal((await publish(node, { broadcast: true, event: 'x' }, good)).status, 202);
    assert.equal((await presence(node, '?users=ann', good)).status, 200);

    const confused = hmacToken(claims, pem);
    const none = unsigned({ alg: 'none', typ: 'JWT' }, claims);
    for (const token of [confused, none]) {
      assertErrorBody(await publish(node, { broadcast: true, event: 'x' }, token), 401);
      assertErrorBody(await presence(node, '?users=ann', token), 401);
    }
  });

  test('HS384 and HS512 admin tokens signed with JWT_SECRET are accepted', async (t) => {
    const node = await startTestNode(t);
    for (const algorithm of ['HS384', 'HS512'] as const) {
      const token = node.token({ sub: 'backend', roles: ['admin'] }, { algorithm });
      assert.equal((await publish(node, { broadcast: true, event: 'x' }, token)).status, 202, algorithm);
      assert.equal((await presence(node, '?users=ann', token)).status, 200, algorithm);
    }
  });
});

/** An HS256 token computed by hand, so any byte string can serve as the HMAC key. */
function hmacToken(claims: object, key: string): string {
  const h = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
  const p = Buffer.from(JSON.stringify(claims)).toString('base64url');
  return `${h}.${p}.${createHmac('sha256', key).update(`${h}.${p}`).digest('base64url')}`;
}

function jwtWithOtherSecret(): string {
  return hmacToken({ sub: 'backend', roles: ['admin'], exp: now() + 600 }, 'a-different-secret-of-at-least-32-bytes!');
}

function unsigned(header: object, claims: object): string {
  return `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.`;
}
