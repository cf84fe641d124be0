// The races a mobile network makes, reproduced on purpose (issue 12): a Redis
// proxy holds replies while clients vanish mid-handshake and reconnect at once,
// or cuts a node off Redis while clients join rooms. Each test would fail on
// the code before the session lifecycle became a state machine.
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { eventually } from '../helpers/eventually';
import { http } from '../helpers/http';
import { startTestNode, type TestNode } from '../helpers/node';
import { startRedis } from '../helpers/redis';
import { RedisProxy } from '../helpers/redis-proxy';
import { inspector, scanKeys } from '../helpers/redis-state';
import { TestClient } from '../helpers/ws-client';

const adminHeaders = (node: TestNode) => ({ authorization: `Bearer ${node.token({ sub: 'ops', roles: ['admin'] })}` });

async function presenceOf(node: TestNode, users: readonly string[]): Promise<Record<string, string>> {
  const res = await http(node.port, 'GET', `/v1/presence?users=${users.join(',')}`, { headers: adminHeaders(node) });
  assert.equal(res.status, 200, res.body);
  return (res.json() as { users: Record<string, string> }).users;
}

async function activeConnections(node: TestNode): Promise<number> {
  return (await node.metrics.activeConnections.get()).values[0]?.value ?? 0;
}

/** Frames of `type` the node has received (signaling_messages_received_total). */
async function received(node: TestNode, type: string): Promise<number> {
  const text = (await http(node.port, 'GET', '/metrics')).body;
  const line = text.split('\n').find((l) => l.startsWith(`signaling_messages_received_total{type="${type}"`));
  return Number(line?.split(' ').pop() ?? 0);
}

/**
 * Two nodes on one Redis; the first reaches it through a proxy the test controls. Everything
 * `viaProxy` does waits in the order it was sent; a client welcomed there afterwards proves that
 * whatever an earlier session had in flight has landed (one commands connection, one subscriber
 * connection, each first in, first out).
 */
async function proxiedPair(t: TestContext, env: Record<string, string> = {}) {
  const redis = await startRedis(t);
  const proxy = await RedisProxy.start(t, redis.port);
  const viaProxy = await startTestNode(t, { REDIS_URL: proxy.url, REDIS_PREFIX: redis.prefix, ...env });
  const direct = await startTestNode(t, { REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix, ...env });
  const settle = async (node: TestNode) => {
    const marker = await TestClient.welcomed(node.port, node.token({ sub: `marker-${Math.random().toString(36).slice(2)}` }));
    marker.close();
  };
  return { redis, proxy, viaProxy, direct, settle };
}

describe('cluster races: clients that vanish mid-handshake, instant reconnects, Redis dropping mid-join', () => {
  test('clients that close right after their upgrade leave no ghost: another node never sees them online', async (t) => {
    const { redis, proxy, viaProxy, direct, settle } = await proxiedPair(t);
    const users = Array.from({ length: 40 }, (_, i) => `vanish${i}`);
    proxy.holdReplies();
    const clients = await Promise.all(users.map((user) => TestClient.connect(viaProxy.port, { token: viaProxy.token({ sub: user, device_id: 'phone' }) })));
    for (const client of clients) client.close();
    // The node saw every close while its subscribes and registrations still waited for Redis.
    await eventually(async () => assert.equal(await activeConnections(viaProxy), 0));
    proxy.releaseReplies();
    await settle(viaProxy);

    const states = await presenceOf(direct, users);
    assert.deepEqual(Object.entries(states).filter(([, s]) => s !== 'offline'), [], 'vanished clients reported online');
    const keys = await scanKeys(inspector(t, redis.url), redis.prefix);
    assert.deepEqual(keys.filter((k) => k.includes('{u:vanish')), []);
    for (const client of clients) assert.equal(client.frames.filter((f) => f.type === 'welcome').length, 0);
  });

  for (const where of ['the same node', 'another node'] as const) {
    test(`a device that reconnects at once, on ${where}, is not kicked by its own vanished connection`, async (t) => {
      const { proxy, viaProxy, direct, settle } = await proxiedPair(t);
      const token = viaProxy.token({ sub: 'flaky', device_id: 'phone' });
      proxy.holdReplies();
      const ghost = await TestClient.connect(viaProxy.port, { token });
      ghost.close();
      await eventually(async () => assert.equal(await activeConnections(viaProxy), 0));
      const target = where === 'the same node' ? viaProxy : direct;
      const connecting = TestClient.welcomed(target.port, token);
      if (where === 'the same node') await eventually(async () => assert.equal(await activeConnections(viaProxy), 1));
      else await connecting;
      proxy.releaseReplies();
      const fresh = await connecting;
      t.after(() => fresh.close());
      await settle(viaProxy);

      assert.equal((await fresh.request({ type: 'ping' }, 'pong')).type, 'pong');
      assert.equal(fresh.closed, undefined, `the new connection was closed: ${JSON.stringify(fresh.closed)}`);
      assert.deepEqual(await presenceOf(direct, ['flaky']), { flaky: 'online' });
      // It is the registered holder: a peer on the other node reaches it.
      const peer = await TestClient.welcomed(direct.port, direct.token({ sub: 'peer' }));
      t.after(() => peer.close());
      assert.equal((await peer.request({ type: 'offer', to: 'flaky', device: 'phone', payload: 1 })).type, 'ack');
      await fresh.next('offer');
    });
  }

  test('a join that fails while Redis is unreachable does not cut another local member off the room', async (t) => {
    const { proxy, viaProxy, direct } = await proxiedPair(t);
    const alice = await TestClient.welcomed(viaProxy.port, viaProxy.token({ sub: 'alice' }));
    const carol = await TestClient.welcomed(viaProxy.port, viaProxy.token({ sub: 'carol' }));
    const bob = await TestClient.welcomed(direct.port, direct.token({ sub: 'bob' }));
    t.after(() => [alice, carol, bob].forEach((c) => c.close()));
    await alice.request({ type: 'subscribe', room: 'r' }, 'subscribed');
    await bob.request({ type: 'subscribe', room: 'r' }, 'subscribed');

    proxy.cut();
    await eventually(async () => assert.equal((await http(viaProxy.port, 'GET', '/ready')).status, 503), 5000, 20);
    assert.equal((await carol.request({ type: 'subscribe', room: 'r' })).code, 'unavailable');
    assert.equal((await carol.request({ type: 'watch', users: ['bob'] })).code, 'unavailable');
    proxy.heal();
    await eventually(async () => assert.equal((await http(viaProxy.port, 'GET', '/ready')).status, 200), 10_000, 20);

    // Alice is still subscribed on her node: bob's message from the other node reaches her.
    await eventually(async () => {
      await bob.request({ type: 'publish', room: 'r', payload: 'still there?' }, 'ack');
      await alice.next('message', (f) => f.payload === 'still there?', 300);
    }, 10_000);
    assert.equal(carol.all('message').length, 0);
  });

  test('subscribe, unsubscribe and subscribe again in one burst leave the store agreeing with the session', async (t) => {
    const { proxy, viaProxy, direct, settle } = await proxiedPair(t);
    const alice = await TestClient.welcomed(viaProxy.port, viaProxy.token({ sub: 'alice' }));
    t.after(() => alice.close());
    proxy.holdReplies();
    alice.send({ type: 'subscribe', room: 'burst', id: 'j1' });
    alice.send({ type: 'unsubscribe', room: 'burst', id: 'l1' });
    alice.send({ type: 'subscribe', room: 'burst', id: 'j2' });
    // All three handled while the first subscribe still waits for Redis.
    await eventually(async () => assert.equal(await received(viaProxy, 'subscribe'), 2));
    proxy.releaseReplies();
    await settle(viaProxy);
    const replies = await eventually(() => {
      const ids = alice.frames.filter((f) => typeof f.id === 'string').map((f) => `${f.type}:${String(f.id)}`);
      assert.equal(ids.length, 3);
      return ids;
    });
    assert.deepEqual(replies, ['subscribed:j1', 'unsubscribed:l1', 'subscribed:j2']);
    const bob = await TestClient.welcomed(direct.port, direct.token({ sub: 'bob' }));
    t.after(() => bob.close());
    const joined = await bob.request({ type: 'subscribe', room: 'burst' }, 'subscribed');
    assert.deepEqual((joined.members as { user: string }[]).map((m) => m.user).sort(), ['alice', 'bob']);
  });

  test('Redis stopping mid-join answers the subscribe unavailable within the cluster wait and keeps nothing; a client connecting meanwhile is welcomed, and registered once Redis answers', async (t) => {
    const { proxy, viaProxy, direct } = await proxiedPair(t);
    const alice = await TestClient.welcomed(viaProxy.port, viaProxy.token({ sub: 'alice' }));
    const bob = await TestClient.welcomed(direct.port, direct.token({ sub: 'bob' }));
    t.after(() => [alice, bob].forEach((c) => c.close()));
    proxy.holdReplies();
    assert.equal((await alice.request({ type: 'subscribe', room: 'r' })).code, 'unavailable');
    assert.equal((await alice.request({ type: 'watch', users: ['bob'] })).code, 'unavailable');
    const carol = await TestClient.welcomed(viaProxy.port, viaProxy.token({ sub: 'carol' }));
    t.after(() => carol.close());
    proxy.releaseReplies();

    assert.equal((await alice.request({ type: 'publish', room: 'r', payload: 1 })).code, 'not_subscribed');
    const joined = await bob.request({ type: 'subscribe', room: 'r' }, 'subscribed');
    assert.deepEqual(joined.members, [{ user: 'bob', device: (joined.members as { device: string }[])[0]?.device }]);
    await eventually(async () => assert.deepEqual(await presenceOf(direct, ['carol']), { carol: 'online' }), 10_000);
    assert.equal((await bob.request({ type: 'offer', to: 'carol', payload: 'hi' })).type, 'ack');
    await carol.next('offer');
  });
});
