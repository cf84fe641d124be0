// Three nodes on a real Redis Cluster (3 masters, REDIS_CLUSTER_NODES): the
// same cross-node behaviour as on one Redis, with the bus on sharded pub/sub
// (SSUBSCRIBE/SPUBLISH) spread over the shards and presence keys per slot.
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { eventually } from '../helpers/eventually';
import { http } from '../helpers/http';
import { startTestNode, TEST_SECRET, type TestNode } from '../helpers/node';
import { spawnNode } from '../helpers/process';
import { redisCli, redisCliLines, startRedisCluster, untilReachable, type RedisClusterDeployment } from '../helpers/redis-topologies';
import { TestClient } from '../helpers/ws-client';

async function startClusterNodes(
  t: TestContext,
  count: number,
  env: Record<string, string> = {},
): Promise<{ redis: RedisClusterDeployment; nodes: [TestNode, TestNode, TestNode] }> {
  // Hooks run in registration order: the nodes must leave Redis before its processes are killed.
  const nodes: TestNode[] = [];
  t.after(() => Promise.all(nodes.map((n) => n.close())));
  const redis = await startRedisCluster(t);
  for (let i = 0; i < count; i++) nodes.push(await startTestNode(undefined, { REDIS_CLUSTER_NODES: redis.nodes, REDIS_PREFIX: redis.prefix, ...env }));
  return { redis, nodes: nodes as [TestNode, TestNode, TestNode] };
}

const adminHeader = (node: TestNode) => ({ authorization: `Bearer ${node.token({ sub: 'ops', roles: ['admin'] })}` });

describe('Redis Cluster: signaling, rooms, presence across nodes', () => {
  test('direct messages cross nodes with acks, device targeting, peer_offline and order over 1,000 messages', async (t) => {
    const { nodes } = await startClusterNodes(t, 3, { RATE_LIMIT_POINTS: '100000' });
    const [n1, n2, n3] = nodes;
    const alice = await TestClient.welcomed(n1.port, n1.token({ sub: 'alice', device_id: 'a1' }));
    const bobPhone = await TestClient.welcomed(n2.port, n2.token({ sub: 'bob', device_id: 'phone' }));
    const bobLaptop = await TestClient.welcomed(n3.port, n3.token({ sub: 'bob', device_id: 'laptop' }));
    t.after(() => [alice, bobPhone, bobLaptop].forEach((c) => c.close()));
    assert.notEqual(alice.welcome.node, bobPhone.welcome.node);
    await untilReachable(alice, 'bob', 'phone');
    await untilReachable(alice, 'bob', 'laptop');
    await untilReachable(bobPhone, 'alice', 'a1');

    const payload = { sdp: 'v=0', list: [1, 'é', null] };
    assert.equal((await alice.request({ type: 'offer', to: 'bob', payload })).type, 'ack');
    for (const bob of [bobPhone, bobLaptop]) assert.deepEqual(await bob.next('offer'), { type: 'offer', from: 'alice', from_device: 'a1', payload });

    assert.equal((await alice.request({ type: 'answer', to: 'bob', device: 'laptop', payload: 1 })).type, 'ack');
    await bobLaptop.next('answer');
    assert.equal((await alice.request({ type: 'answer', to: 'bob', device: 'tablet', payload: 1 })).code, 'peer_offline');
    assert.equal((await alice.request({ type: 'answer', to: 'carol', payload: 1 })).code, 'peer_offline');
    assert.equal((await bobPhone.request({ type: 'answer', to: 'alice', payload: 'back' })).type, 'ack');
    assert.equal((await alice.next('answer')).payload, 'back');
    assert.equal(bobPhone.all('answer').length, 0, 'a device-targeted answer reached another device');

    for (let i = 0; i < 1000; i++) alice.send({ type: 'candidate', to: 'bob', id: `c${i}`, payload: i });
    await eventually(() => assert.equal(alice.all('ack').filter((a) => String(a.id).startsWith('c')).length, 1000), 20_000);
    const failed = alice.all('error').filter((e) => String(e.id).startsWith('c'));
    assert.equal(failed.length, 0, JSON.stringify(failed.slice(0, 3)));
    for (const bob of [bobPhone, bobLaptop]) {
      await bob.next('candidate', (f) => f.payload === 999, 20_000);
      assert.deepEqual(
        bob.all('candidate').map((f) => f.payload),
        Array.from({ length: 1000 }, (_, i) => i),
      );
    }
  });

  test('rooms: members, member_joined/left and one copy of each message per member on every node', async (t) => {
    const { nodes } = await startClusterNodes(t, 3);
    const clients = await Promise.all(nodes.map((n, i) => TestClient.welcomed(n.port, n.token({ sub: `m${i}`, device_id: `d${i}` }))));
    t.after(() => clients.forEach((c) => c.close()));
    const [a, b, c] = clients as unknown as [TestClient, TestClient, TestClient];
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

  test('presence and watch see the whole cluster; /health reports the Redis bus up', async (t) => {
    const { nodes } = await startClusterNodes(t, 3);
    const [n1, n2, n3] = nodes;
    for (const node of nodes) {
      await eventually(async () => {
        const health = await http(node.port, 'GET', '/health');
        assert.equal(health.status, 200, health.body);
        assert.deepEqual(
          { ...(health.json() as Record<string, unknown>), uptime_s: 0 },
          { status: 'healthy', node: node.config.nodeId, version: node.config.version, uptime_s: 0, connections: 0, tunnels: 0, bus: 'redis', redis: 'up' },
        );
      });
      assert.equal((await http(node.port, 'GET', '/ready')).status, 200);
    }

    const watcher = await TestClient.welcomed(n1.port, n1.token({ sub: 'watcher' }));
    t.after(() => watcher.close());
    assert.deepEqual((await watcher.request({ type: 'watch', users: ['bob'] }, 'watching')).users, { bob: 'offline' });
    const bob1 = await TestClient.welcomed(n2.port, n2.token({ sub: 'bob', device_id: 'b1' }));
    assert.deepEqual(await watcher.next('presence'), { type: 'presence', user: 'bob', status: 'online' });
    const bob2 = await TestClient.welcomed(n3.port, n3.token({ sub: 'bob', device_id: 'b2' }));
    t.after(() => [bob1, bob2].forEach((c) => c.close()));
    await untilReachable(watcher, 'bob', 'b2');
    // Several users at once: one EXISTS per user, each in its own slot.
    assert.deepEqual((await watcher.request({ type: 'presence', users: ['bob', 'nobody', 'watcher'] }, 'presence')).users, {
      bob: 'online',
      nobody: 'offline',
      watcher: 'online',
    });
    bob1.close();
    await eventually(async () =>
      assert.deepEqual((await http(n1.port, 'GET', '/v1/presence?users=bob,watcher,x', { headers: adminHeader(n1) })).json(), {
        users: { bob: 'online', watcher: 'online', x: 'offline' },
      }),
    );
    bob2.close();
    assert.deepEqual(await watcher.next('presence', (f) => f.status !== undefined), { type: 'presence', user: 'bob', status: 'offline' });
    assert.equal(watcher.all('presence').filter((f) => f.status !== undefined).length, 2);
  });

  test('takeover across nodes: the newer connection wins, the older closes 4009', async (t) => {
    const { nodes } = await startClusterNodes(t, 2);
    const [n1, n2] = nodes;
    const older = await TestClient.welcomed(n1.port, n1.token({ sub: 'ann', device_id: 'phone' }));
    // "Older" means registered first, not welcomed first (see untilReachable).
    await eventually(async () =>
      assert.deepEqual((await http(n2.port, 'GET', '/v1/presence?users=ann', { headers: adminHeader(n2) })).json(), { users: { ann: 'online' } }),
    );
    const newer = await TestClient.welcomed(n2.port, n2.token({ sub: 'ann', device_id: 'phone' }));
    t.after(() => [older, newer].forEach((c) => c.close()));
    assert.deepEqual(await older.waitClosed(), { code: 4009, reason: 'replaced' });
    const ben = await TestClient.welcomed(n1.port, n1.token({ sub: 'ben' }));
    t.after(() => ben.close());
    assert.equal((await ben.request({ type: 'offer', to: 'ann', device: 'phone', payload: 'x' })).type, 'ack');
    await newer.next('offer');
    assert.deepEqual((await ben.request({ type: 'presence', users: ['ann'] })).users, { ann: 'online' });
  });

  test('a node that dies without a goodbye is reaped: its users go offline and leave their rooms', async (t) => {
    const env = { PRESENCE_TTL_MS: '1500' };
    const { redis, nodes } = await startClusterNodes(t, 1, env);
    const survivor = nodes[0];
    const doomed = await spawnNode(t, { ...env, JWT_SECRET: TEST_SECRET, NODE_ID: `doomed-${process.pid}`, REDIS_CLUSTER_NODES: redis.nodes, REDIS_PREFIX: redis.prefix });
    const watcher = await TestClient.welcomed(survivor.port, survivor.token({ sub: 'watcher', device_id: 'w' }));
    t.after(() => watcher.close());
    await watcher.request({ type: 'subscribe', room: 'wake' }, 'subscribed');
    const ghosts = ['ghost1', 'ghost2', 'ghost3'];
    const clients = await Promise.all(ghosts.map((user) => TestClient.welcomed(doomed.port, survivor.token({ sub: user, device_id: 'g' }))));
    t.after(() => clients.forEach((c) => c.close()));
    for (const client of clients) await client.request({ type: 'subscribe', room: 'wake' }, 'subscribed');
    await eventually(async () => assert.deepEqual(Object.values((await watcher.request({ type: 'presence', users: ghosts }, 'presence')).users as object), ['online', 'online', 'online']));
    assert.deepEqual(Object.values((await watcher.request({ type: 'watch', users: ghosts }, 'watching')).users as object), ['online', 'online', 'online']);

    doomed.kill('SIGKILL');
    await doomed.exited;
    // Keys of one user, one room and one node live in different slots: the reaper works per key.
    await eventually(() => {
      const offline = watcher.all('presence').filter((f) => f.status === 'offline').map((f) => f.user);
      assert.deepEqual(offline.sort(), ghosts);
      assert.deepEqual(watcher.all('member_left').map((f) => f.user).sort(), ghosts);
    }, 10_000);
    assert.deepEqual((await watcher.request({ type: 'presence', users: ghosts }, 'presence')).users, { ghost1: 'offline', ghost2: 'offline', ghost3: 'offline' });
    const rejoined = await watcher.request({ type: 'subscribe', room: 'wake' }, 'subscribed');
    assert.deepEqual(rejoined.members, [{ user: 'watcher', device: 'w' }]);
    const port = String(redis.ports[0]);
    for (const key of [`{n:doomed-${process.pid}}devices`, `{n:doomed-${process.pid}}rooms`, '{u:ghost1}devices'])
      assert.equal((await redisCli(['-c', '-p', port, 'exists', `${redis.prefix}${key}`])).trim(), '0', key);
    assert.equal((await redisCli(['-c', '-p', port, 'zscore', `${redis.prefix}nodes`, `doomed-${process.pid}`])).trim(), '');
  });

  test('channels are sharded: SSUBSCRIBE spreads them over the masters, no plain SUBSCRIBE is used', async (t) => {
    const { redis, nodes } = await startClusterNodes(t, 3);
    const users = Array.from({ length: 12 }, (_, i) => `user${i}`);
    // User i is on node i % 3 and in room i % 4: every room has a member on each node.
    const rooms = Array.from({ length: 4 }, (_, i) => `room${i}`);
    const clients = await Promise.all(users.map((user, i) => {
      const node = nodes[i % nodes.length] as TestNode;
      return TestClient.welcomed(node.port, node.token({ sub: user, device_id: 'dev' }));
    }));
    t.after(() => clients.forEach((c) => c.close()));
    for (const [i, client] of clients.entries()) await untilReachable(client, users[(i + 1) % users.length] as string, 'dev');
    await Promise.all(clients.map((c, i) => c.request({ type: 'subscribe', room: rooms[i % rooms.length] }, 'subscribed')));
    // Traffic: each user messages the next one (on another node) and publishes to its room.
    for (const [i, client] of clients.entries()) {
      const to = users[(i + 1) % users.length] as string;
      assert.equal((await client.request({ type: 'offer', to, payload: i })).type, 'ack');
      assert.equal((await client.request({ type: 'publish', room: rooms[i % rooms.length], payload: i })).type, 'ack');
    }
    for (const [i, client] of clients.entries()) {
      await client.next('offer', (f) => f.payload === (i + users.length - 1) % users.length);
      // The two other members of the room, on the two other nodes.
      await eventually(() => assert.equal(client.all('message').filter((f) => f.room !== undefined).length, 2));
    }

    // The Redis channel name is <prefix>{<tag>}<bus channel>.
    const expected = new Set<string>([
      ...users.flatMap((u) => [`${redis.prefix}{u:${u}}u:${u}`, `${redis.prefix}{u:${u}}d:${u}/dev`]),
      ...rooms.map((r) => `${redis.prefix}{r:${r}}r:${r}`),
      ...nodes.map((n) => `${redis.prefix}{n:${n.config.nodeId}}n:${n.config.nodeId}`),
      `${redis.prefix}{all}all`,
    ]);
    const perMaster = new Map<number, string[]>();
    for (const port of redis.ports) {
      perMaster.set(port, (await redisCliLines(port, 'pubsub', 'shardchannels', `${redis.prefix}*`)).sort());
      assert.deepEqual(await redisCliLines(port, 'pubsub', 'channels', '*'), [], `plain pub/sub channels on master ${port}`);
      assert.deepEqual(await redisCliLines(port, 'pubsub', 'numpat'), ['0'], `pattern subscriptions on master ${port}`);
    }
    const all = [...perMaster.values()].flat();
    assert.equal(all.length, new Set(all).size, 'a channel is subscribed on two masters');
    for (const name of expected) assert.ok(all.includes(name), `${name} is not subscribed on any master: ${JSON.stringify(Object.fromEntries(perMaster))}`);
    const used = [...perMaster.values()].filter((names) => names.length > 0).length;
    assert.ok(used > 1, `every channel is on one master: ${JSON.stringify(Object.fromEntries(perMaster))}`);
    // Each node subscribes a room's channel once, however many of its members it holds.
    for (const room of rooms) {
      const name = `${redis.prefix}{r:${room}}r:${room}`;
      const port = [...perMaster].find(([, names]) => names.includes(name))?.[0] as number;
      const [, count] = await redisCliLines(port, 'pubsub', 'shardnumsub', name);
      assert.equal(count, '3', `${name}: a room with members on the 3 nodes`);
    }
  });
});
