// Three nodes on a real Redis Cluster (3 masters, REDIS_CLUSTER_NODES): the
// same cross-node behaviour as on one Redis, with the bus on sharded pub/sub
// (SSUBSCRIBE/SPUBLISH) spread over the shards and presence keys per slot.
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { checkDirectSignaling, checkHealthyOnRedis, checkPresence, checkRooms, checkTakeover } from '../helpers/cluster-checks';
import { eventually } from '../helpers/eventually';
import { http } from '../helpers/http';
import { startTestNode, TEST_SECRET, type TestNode } from '../helpers/node';
import { spawnNode } from '../helpers/process';
import { redisCli, redisCliLines, startRedisCluster, type RedisClusterDeployment } from '../helpers/redis-topologies';
import { TestClient } from '../helpers/ws-client';

async function startClusterNodes(
  t: TestContext,
  count: number,
  env: Record<string, string> = {},
  options: Parameters<typeof startRedisCluster>[2] = {},
): Promise<{ redis: RedisClusterDeployment; nodes: [TestNode, TestNode, TestNode] }> {
  // Hooks run in registration order: the nodes must leave Redis before its processes are killed.
  const nodes: TestNode[] = [];
  t.after(() => Promise.all(nodes.map((n) => n.close())));
  const redis = await startRedisCluster(t, 3, options);
  for (let i = 0; i < count; i++) nodes.push(await startTestNode(undefined, { REDIS_CLUSTER_NODES: redis.nodes, REDIS_PREFIX: redis.prefix, ...env }));
  return { redis, nodes: nodes as [TestNode, TestNode, TestNode] };
}

/** Which master port owns a slot, from CLUSTER NODES (`<id> <host:port@bus> <flags> ... <slot ranges>`). */
async function slotOwners(port: number): Promise<(slot: number) => number | undefined> {
  const ranges: [number, number, number][] = [];
  for (const line of await redisCliLines(port, 'cluster', 'nodes')) {
    const fields = line.split(' ');
    const owner = Number(fields[1]?.split('@')[0]?.split(':').pop());
    for (const range of fields.slice(8)) {
      const [from = '', to = from] = range.split('-');
      ranges.push([Number(from), Number(to), owner]);
    }
  }
  return (slot) => ranges.find(([from, to]) => slot >= from && slot <= to)?.[2];
}

describe('Redis Cluster: signaling, rooms, presence across nodes', () => {
  test('direct messages cross nodes with acks, device targeting, peer_offline and order over 1,000 messages', async (t) => {
    await checkDirectSignaling(t, (await startClusterNodes(t, 3, { RATE_LIMIT_POINTS: '100000' })).nodes);
  });

  test('rooms: members, member_joined/left and one copy of each message per member on every node', async (t) => {
    await checkRooms(t, (await startClusterNodes(t, 3)).nodes);
  });

  test('presence and watch see the whole cluster; /health reports the Redis bus up', async (t) => {
    const { nodes } = await startClusterNodes(t, 3);
    await checkHealthyOnRedis(nodes);
    await checkPresence(t, nodes);
  });

  test('a master going down makes the nodes unready, though the other masters still serve and their own probe still passes', async (t) => {
    // Without full coverage the healthy masters keep answering: only the slot check can tell.
    const { redis, nodes } = await startClusterNodes(t, 2, {}, { requireFullCoverage: false });
    await checkHealthyOnRedis(nodes);
    // The master to kill holds neither node's probe channel: each node's own probe keeps passing.
    const probeSlots = await Promise.all(
      nodes.map(async (node) => Number(await redisCli(['-p', String(redis.ports[0]), 'cluster', 'keyslot', `${redis.prefix}{n:${node.config.nodeId}}n:${node.config.nodeId}`]))),
    );
    const owners = await slotOwners(redis.ports[0] ?? 0);
    const victim = redis.ports.findIndex((port) => probeSlots.every((slot) => owners(slot) !== port));
    assert.ok(victim !== -1, 'every master holds a probe channel; cannot pick one to kill');
    process.kill(redis.pids[victim] ?? 0, 'SIGKILL');
    for (const node of nodes) {
      await eventually(async () => assert.equal((await http(node.port, 'GET', '/ready')).status, 503), 10_000, 50);
      const health = (await http(node.port, 'GET', '/health')).json() as Record<string, unknown>;
      assert.deepEqual([health.status, health.redis], ['unhealthy', 'down']);
    }
  });

  test('takeover across nodes: the newer connection wins, the older closes 4009', async (t) => {
    await checkTakeover(t, (await startClusterNodes(t, 2)).nodes);
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

    const port = String(redis.ports[0]);
    const leases = () => redisCliLines(Number(port), '-c', 'zrange', `${redis.prefix}{leases}nodes`, '0', '-1').then(async (held) => [...held, ...(await redisCliLines(Number(port), '-c', 'zrange', `${redis.prefix}{leases}reaping`, '0', '-1'))]);
    const doomedLease = (await leases()).find((lease) => lease.startsWith(`doomed-${process.pid}#`));
    assert.ok(doomedLease !== undefined, 'the doomed node holds a lease');
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
    for (const key of [`{n:${doomedLease}}devices`, `{n:${doomedLease}}rooms`, '{u:ghost1}devices'])
      assert.equal((await redisCli(['-c', '-p', port, 'exists', `${redis.prefix}${key}`])).trim(), '0', key);
    await eventually(async () => assert.ok(!(await leases()).includes(doomedLease), 'the reaped lease is gone'));
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
