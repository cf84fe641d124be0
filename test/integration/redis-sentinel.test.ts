// Two nodes that find their Redis through Sentinel (REDIS_SENTINELS +
// REDIS_SENTINEL_NAME): cross-node signaling with acks, rooms and presence.
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { eventually } from '../helpers/eventually';
import { http } from '../helpers/http';
import { startTestNode, type TestNode } from '../helpers/node';
import { redisCliLines, startRedisSentinel, untilReachable, type RedisSentinelDeployment } from '../helpers/redis-topologies';
import { TestClient } from '../helpers/ws-client';

async function startSentinelNodes(t: TestContext, env: Record<string, string> = {}): Promise<{ redis: RedisSentinelDeployment; nodes: [TestNode, TestNode] }> {
  // Hooks run in registration order: the nodes must leave Redis before its processes are killed.
  const nodes: TestNode[] = [];
  t.after(() => Promise.all(nodes.map((n) => n.close())));
  const redis = await startRedisSentinel(t, 2);
  for (let i = 0; i < 2; i++)
    nodes.push(await startTestNode(undefined, { REDIS_SENTINELS: redis.sentinels, REDIS_SENTINEL_NAME: redis.name, REDIS_PREFIX: redis.prefix, ...env }));
  return { redis, nodes: nodes as [TestNode, TestNode] };
}

describe('Redis Sentinel: signaling and rooms across nodes', () => {
  test('direct messages cross nodes with acks, device targeting and peer_offline; /health is up', async (t) => {
    const { redis, nodes } = await startSentinelNodes(t, { RATE_LIMIT_POINTS: '100000' });
    const [n1, n2] = nodes;
    for (const node of nodes) {
      await eventually(async () => {
        const body = (await http(node.port, 'GET', '/health')).json() as Record<string, unknown>;
        assert.deepEqual([body.status, body.bus, body.redis], ['healthy', 'redis', 'up']);
      });
    }
    const alice = await TestClient.welcomed(n1.port, n1.token({ sub: 'alice', device_id: 'a1' }));
    const bobPhone = await TestClient.welcomed(n2.port, n2.token({ sub: 'bob', device_id: 'phone' }));
    const bobLaptop = await TestClient.welcomed(n1.port, n1.token({ sub: 'bob', device_id: 'laptop' }));
    t.after(() => [alice, bobPhone, bobLaptop].forEach((c) => c.close()));
    assert.notEqual(alice.welcome.node, bobPhone.welcome.node);
    await untilReachable(alice, 'bob', 'phone');
    await untilReachable(alice, 'bob', 'laptop');
    await untilReachable(bobPhone, 'alice', 'a1');

    assert.equal((await alice.request({ type: 'offer', to: 'bob', payload: { sdp: 'v=0' } })).type, 'ack');
    for (const bob of [bobPhone, bobLaptop]) assert.deepEqual(await bob.next('offer'), { type: 'offer', from: 'alice', from_device: 'a1', payload: { sdp: 'v=0' } });
    assert.equal((await alice.request({ type: 'answer', to: 'bob', device: 'phone', payload: 1 })).type, 'ack');
    await bobPhone.next('answer');
    assert.equal((await alice.request({ type: 'answer', to: 'bob', device: 'tablet', payload: 1 })).code, 'peer_offline');
    assert.equal((await alice.request({ type: 'answer', to: 'carol', payload: 1 })).code, 'peer_offline');
    assert.equal((await bobPhone.request({ type: 'answer', to: 'alice', payload: 'back' })).type, 'ack');
    assert.equal((await alice.next('answer')).payload, 'back');

    for (let i = 0; i < 200; i++) alice.send({ type: 'candidate', to: 'bob', device: 'phone', id: `c${i}`, payload: i });
    await eventually(() => assert.equal(alice.all('ack').filter((a) => String(a.id).startsWith('c')).length, 200), 10_000);
    await bobPhone.next('candidate', (f) => f.payload === 199, 10_000);
    assert.deepEqual(
      bobPhone.all('candidate').map((f) => f.payload),
      Array.from({ length: 200 }, (_, i) => i),
    );
    assert.deepEqual((await alice.request({ type: 'presence', users: ['bob', 'nobody'] }, 'presence')).users, { bob: 'online', nobody: 'offline' });

    // The nodes really went through Sentinel to the master it names (one server, plain pub/sub).
    const channels = await redisCliLines(redis.masterPort, 'pubsub', 'channels', `${redis.prefix}*`);
    assert.ok(channels.includes(`${redis.prefix}{u:bob}u:bob`), JSON.stringify(channels));
  });

  test('rooms: members, member_joined/left and one copy of each message per member', async (t) => {
    const { nodes } = await startSentinelNodes(t);
    const [n1, n2] = nodes;
    const a = await TestClient.welcomed(n1.port, n1.token({ sub: 'm0', device_id: 'd0' }));
    const b = await TestClient.welcomed(n2.port, n2.token({ sub: 'm1', device_id: 'd1' }));
    const c = await TestClient.welcomed(n2.port, n2.token({ sub: 'm2', device_id: 'd2' }));
    t.after(() => [a, b, c].forEach((client) => client.close()));
    await a.request({ type: 'subscribe', room: 'conf' }, 'subscribed');
    await b.request({ type: 'subscribe', room: 'conf' }, 'subscribed');
    const joined = await c.request({ type: 'subscribe', room: 'conf' }, 'subscribed');
    assert.deepEqual(
      (joined.members as { user: string }[]).map((m) => m.user).sort(),
      ['m0', 'm1', 'm2'],
    );
    assert.deepEqual(await a.next('member_joined', (f) => f.user === 'm2'), { type: 'member_joined', room: 'conf', user: 'm2', device: 'd2' });
    await b.next('member_joined', (f) => f.user === 'm2');

    assert.equal((await a.request({ type: 'publish', room: 'conf', payload: 'hello all' })).type, 'ack');
    for (const member of [b, c]) assert.deepEqual(await member.next('message'), { type: 'message', room: 'conf', from: 'm0', from_device: 'd0', payload: 'hello all' });
    await b.request({ type: 'ping' });
    await c.request({ type: 'ping' });
    assert.equal(b.all('message').length, 1);
    assert.equal(c.all('message').length, 1);
    assert.equal(a.all('message').length, 0);

    await c.request({ type: 'unsubscribe', room: 'conf' }, 'unsubscribed');
    for (const member of [a, b]) await member.next('member_left', (f) => f.user === 'm2');
    b.close();
    await a.next('member_left', (f) => f.user === 'm1');
    const again = await c.request({ type: 'subscribe', room: 'conf' }, 'subscribed');
    assert.deepEqual((again.members as { user: string }[]).map((m) => m.user).sort(), ['m0', 'm2']);
  });
});
