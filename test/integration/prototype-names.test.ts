// Names that are also Object.prototype members (`__proto__`, `constructor`,
// `toString`) match the name pattern of SPEC §3.3, so they are valid users,
// devices and rooms, and valid HTTP header names. Wherever a client string
// keys a plain object they break: an assignment to `__proto__` is lost, and a
// lookup of `constructor` finds a function. End to end, with real clients.
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { createLogger } from '../../src/log/logger';
import { jsonReply } from '../../src/transport/http-types';
import { UwsServer } from '../../src/transport/uws-server';
import { http } from '../helpers/http';
import { startTestNode, type TestNode } from '../helpers/node';
import { rawExchange, upgradeLines } from '../helpers/raw-http';
import { TestClient } from '../helpers/ws-client';

const NAMES = ['__proto__', 'constructor', 'toString'] as const;

/** An object with these own keys. Object.fromEntries defines keys, so `__proto__` is a key, not the prototype. */
const record = <V>(entries: [string, V][]): Record<string, V> => Object.fromEntries(entries);
const adminHeaders = (node: TestNode) => ({ authorization: `Bearer ${node.token({ sub: 'backend', roles: ['admin'] })}` });

/** One connection per name, user and device both named after it, plus `ann` to talk to them. */
async function connectAll(t: TestContext, node: TestNode): Promise<{ ann: TestClient; named: Map<string, TestClient> }> {
  const ann = await TestClient.welcomed(node.port, node.token({ sub: 'ann', device_id: 'a1' }));
  const named = new Map<string, TestClient>();
  for (const name of NAMES) named.set(name, await TestClient.welcomed(node.port, node.token({ sub: name, device_id: name })));
  t.after(() => [ann, ...named.values()].forEach((c) => c.close()));
  return { ann, named };
}

function clientOf(named: Map<string, TestClient>, name: string): TestClient {
  const client = named.get(name);
  if (client === undefined) throw new Error(`no client for ${name}`);
  return client;
}

describe('users, devices and rooms named __proto__, constructor, toString', () => {
  test('connect, and exchange offers and answers with a device named the same', async (t) => {
    const node = await startTestNode(t);
    const { ann, named } = await connectAll(t, node);
    for (const name of NAMES) {
      const peer = clientOf(named, name);
      assert.deepEqual([peer.frames[0]?.user, peer.frames[0]?.device], [name, name]);
      const offer = { sdp: 'v=0', [name]: 1 };
      assert.deepEqual(await ann.request({ type: 'offer', to: name, device: name, payload: offer }), { type: 'ack', id: ann.frames.at(-1)?.id });
      assert.deepEqual(await peer.next('offer'), { type: 'offer', from: 'ann', from_device: 'a1', payload: offer });
      peer.send({ type: 'answer', to: 'ann', payload: { sdp: name } });
      assert.deepEqual(await ann.next('answer'), { type: 'answer', from: name, from_device: name, payload: { sdp: name } });
    }
    // Each message reached only the user it named.
    for (const name of NAMES) assert.equal(clientOf(named, name).all('offer').length, 1, name);
  });

  test('rooms: subscribe lists the members, others see member_joined, publish reaches them, unsubscribe sends member_left', async (t) => {
    const node = await startTestNode(t);
    const { ann, named } = await connectAll(t, node);
    for (const room of NAMES) {
      const peer = clientOf(named, room);
      assert.equal((await ann.request({ type: 'subscribe', room }, 'subscribed')).type, 'subscribed');
      const subscribed = await peer.request({ type: 'subscribe', room }, 'subscribed');
      const members = (subscribed.members as { user: string; device: string }[]).map((m) => `${m.user}/${m.device}`).sort();
      assert.deepEqual(members, [`${room}/${room}`, 'ann/a1'].sort(), room);
      assert.deepEqual(await ann.next('member_joined'), { type: 'member_joined', room, user: room, device: room });
      assert.equal((await peer.request({ type: 'publish', room, payload: { [room]: room } })).type, 'ack');
      assert.deepEqual(await ann.next('message'), { type: 'message', room, from: room, from_device: room, payload: { [room]: room } });
      assert.equal((await peer.request({ type: 'unsubscribe', room }, 'unsubscribed')).type, 'unsubscribed');
      assert.deepEqual(await ann.next('member_left'), { type: 'member_left', room, user: room, device: room });
    }
  });

  test('presence query lists every name', async (t) => {
    const node = await startTestNode(t);
    const { ann } = await connectAll(t, node);
    const reply = await ann.request({ type: 'presence', users: [...NAMES, 'zed'] }, 'presence');
    assert.deepEqual(reply.users, record([...NAMES.map((name): [string, string] => [name, 'online']), ['zed', 'offline']]));
  });

  test('watch replies with the state of every name', async (t) => {
    const node = await startTestNode(t);
    const { ann } = await connectAll(t, node);
    const reply = await ann.request({ type: 'watch', users: [...NAMES] }, 'watching');
    assert.deepEqual(reply.users, record(NAMES.map((name) => [name, 'online'])));
  });

  test('watchers hear each name go offline and come back online', async (t) => {
    const node = await startTestNode(t);
    const { ann, named } = await connectAll(t, node);
    assert.equal((await ann.request({ type: 'watch', users: [...NAMES] }, 'watching')).type, 'watching');
    for (const name of NAMES) {
      clientOf(named, name).close();
      assert.deepEqual(await ann.next('presence', (f) => f.user === name), { type: 'presence', user: name, status: 'offline' });
      const again = await TestClient.welcomed(node.port, node.token({ sub: name, device_id: name }));
      t.after(() => again.close());
      assert.deepEqual(await ann.next('presence', (f) => f.user === name), { type: 'presence', user: name, status: 'online' });
    }
    const unwatched = await ann.request({ type: 'unwatch', users: [...NAMES] }, 'unwatched');
    assert.deepEqual(unwatched.users, [...NAMES]);
  });

  test('admin API: events published to each name as user and as room arrive', async (t) => {
    const node = await startTestNode(t);
    const { ann, named } = await connectAll(t, node);
    for (const name of NAMES) {
      await clientOf(named, name).request({ type: 'subscribe', room: name }, 'subscribed');
      const toUser = await http(node.port, 'POST', '/v1/publish', {
        headers: { ...adminHeaders(node), 'content-type': 'application/json' },
        body: JSON.stringify({ to: name, device: name, event: 'ring', payload: name }),
      });
      assert.equal(toUser.status, 202, toUser.body);
      assert.deepEqual(await clientOf(named, name).next('event'), { type: 'event', event: 'ring', payload: name });
      const toRoom = await http(node.port, 'POST', '/v1/publish', {
        headers: { ...adminHeaders(node), 'content-type': 'application/json' },
        body: JSON.stringify({ room: name, event: 'room-ring', payload: name }),
      });
      assert.equal(toRoom.status, 202, toRoom.body);
      assert.deepEqual(await clientOf(named, name).next('event'), { type: 'event', event: 'room-ring', payload: name });
    }
    assert.deepEqual(ann.all('event'), []);
  });

  test('admin API: the presence query lists every name', async (t) => {
    const node = await startTestNode(t);
    await connectAll(t, node);
    const res = await http(node.port, 'GET', `/v1/presence?users=${NAMES.join(',')},zed`, { headers: adminHeaders(node) });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual((res.json() as { users: unknown }).users, record([...NAMES.map((name): [string, string] => [name, 'online']), ['zed', 'offline']]));
  });
});

// uWS stops parsing a request at a header name with "_" in it (no handler runs; the connection
// idles until uWS's timeout), so of the three only `constructor` and `toString` reach a header map
// through the server; test/unit/request-headers.test.ts gives the map a `__proto__` line directly.
describe('HTTP headers named __proto__, constructor, toString', () => {
  const HEADERS = ['constructor', 'toString'] as const;
  const headerLines = HEADERS.flatMap((name) => [`${name}: first ${name}`, `${name}: second ${name}`]);
  /** What a handler should see: lowercase names, own entries, repeated lines joined in order. */
  const expected = record(HEADERS.map((name) => [name.toLowerCase(), `first ${name}, second ${name}`]));
  const pick = (headers: Readonly<Record<string, string>>) => record(HEADERS.map((name) => [name.toLowerCase(), headers[name.toLowerCase()] ?? '(missing)']));

  async function echoServer(t: TestContext): Promise<number> {
    const server = new UwsServer({ logger: createLogger('silent') })
      .route({
        method: 'get',
        pattern: '/echo',
        handle: (request) => jsonReply(200, { prototype: Object.getPrototypeOf(request.headers) === null, headers: pick(request.headers) }),
      })
      .websocket({
        pattern: '/ws',
        maxPayloadBytes: 1024,
        idleTimeoutS: 8,
        maxBufferedBytes: 1024,
        upgradeHeaders: HEADERS.map((name) => name.toLowerCase()),
        // Refused with what the upgrade saw, so the test can read it.
        upgrade: (request) => ({ accept: false, reply: jsonReply(200, { headers: pick(request.headers) }) }),
        open: () => assert.fail('no socket is accepted'),
      });
    const port = await server.listen('127.0.0.1', 0);
    t.after(() => server.stopListening());
    return port;
  }

  test('a route and an upgrade see them as plain entries, repeated lines joined', async (t) => {
    const port = await echoServer(t);
    const route = await rawExchange(t, port, ['GET /echo HTTP/1.1', 'Host: 127.0.0.1', ...headerLines]);
    assert.deepEqual(JSON.parse(route.body), { prototype: true, headers: expected });
    const upgrade = await rawExchange(t, port, upgradeLines('/ws', headerLines));
    assert.deepEqual(JSON.parse(upgrade.body), { headers: expected });
  });

  test('a node serves requests and upgrades that carry them', async (t) => {
    const node = await startTestNode(t);
    const extra = record(HEADERS.map((name) => [name, `value of ${name}`]));
    const c = await TestClient.connect(node.port, { token: node.token({ sub: 'ann' }) }, extra);
    t.after(() => c.close());
    assert.equal((await c.next('welcome')).user, 'ann');
    const publish = await http(node.port, 'POST', '/v1/publish', {
      headers: { ...extra, ...adminHeaders(node), 'content-type': 'application/json' },
      body: JSON.stringify({ to: 'ann', event: 'headers', payload: 1 }),
    });
    assert.equal(publish.status, 202, publish.body);
    assert.deepEqual(await c.next('event'), { type: 'event', event: 'headers', payload: 1 });
    assert.equal((await http(node.port, 'GET', '/v1/presence?users=ann', { headers: { ...extra, ...adminHeaders(node) } })).status, 200);
    assert.equal((await http(node.port, 'GET', '/health', { headers: extra })).status, 200);
  });
});
