// What only the Redis tunnel registry has to do (the contract both
// implementations keep is test/contract/tunnel-registry.contract.test.ts):
// races held open with a proxy, a node that dies, a Redis that restarts empty
// or goes away, and the one lease it shares with presence.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { eventually } from '../helpers/eventually';
import { startLeaseNode } from '../helpers/lease-node';
import { startRedis } from '../helpers/redis';
import { RedisProxy } from '../helpers/redis-proxy';
import { inspector, leaseNodes, scanKeys } from '../helpers/redis-state';

/** The registry's keys: route hashes and lease indexes. */
const registryKeys = (keys: string[]) => keys.filter((key) => key.includes('{t:') || key.endsWith('}tunnels')).sort();

describe('RedisRegistry: races', () => {
  test('a remove made while the route itself is in flight (its index written) leaves nothing', async (t) => {
    const redis = await startRedis(t);
    const proxy = await RedisProxy.start(t, redis.port);
    const node = await startLeaseNode(t, { REDIS_URL: proxy.url }, redis.prefix, 'n1');
    const inspect = inspector(t, redis.url);
    const routeKey = `${redis.prefix}{t:p}routes`;

    // The index write runs in Redis and its reply waits; once let through, the route's write
    // follows and runs, and its reply waits in turn: the route is in Redis, its add unfinished.
    proxy.holdReplies();
    let settled = false;
    const added = node.registry.add('p', 's1').finally(() => (settled = true));
    await eventually(async () => assert.equal(await inspect.exists(`${redis.prefix}{n:${node.lease.id}}tunnels`), 1));
    proxy.releaseReplies();
    proxy.holdReplies();
    await eventually(async () => assert.deepEqual(await inspect.hkeys(routeKey), ['s1']));
    assert.equal(settled, false);

    const removed = node.registry.remove('p', 's1');
    proxy.releaseReplies();
    await Promise.all([added, removed]);
    assert.deepEqual(await node.registry.routes('p'), []);
    assert.deepEqual(registryKeys(await scanKeys(inspect, redis.prefix)), []);
  });

  test('a remove then an add of the same sidecar, neither awaited: the route stays, and its lease still indexes it for reapers', async (t) => {
    const redis = await startRedis(t);
    const node = await startLeaseNode(t, { REDIS_URL: redis.url }, redis.prefix, 'n1');
    await node.registry.add('p', 'back');
    await Promise.all([node.registry.remove('p', 'back'), node.registry.add('p', 'back')]);
    const inspect = inspector(t, redis.url);
    assert.deepEqual(await inspect.hvals(`${redis.prefix}{t:p}routes`), [node.lease.id]);
    assert.deepEqual(await inspect.smembers(`${redis.prefix}{n:${node.lease.id}}tunnels`), ['p/back']);
  });
});

describe('RedisRegistry: leases', () => {
  test("a node cut off from Redis drops out of the others' routes once its lease expires, before any reaper ran, and is reaped", async (t) => {
    const redis = await startRedis(t);
    const proxy = await RedisProxy.start(t, redis.port);
    const doomed = await startLeaseNode(t, { REDIS_URL: proxy.url }, redis.prefix, 'doomed', { ttlMs: 600 });
    // Only reads: no heartbeat, so nobody reaps until the survivor starts.
    const reader = await startLeaseNode(t, { REDIS_URL: redis.url }, redis.prefix, 'reader', { idle: true });
    await doomed.registry.add('p', 'd1');
    await doomed.registry.add('q', 'd2');
    assert.deepEqual(await reader.registry.routes('p'), [{ node: 'doomed', sidecar: 'd1' }]);

    proxy.cut();
    // Skipped once its lease expires by Redis's clock, while its routes are still in Redis.
    await eventually(async () => assert.deepEqual(await reader.registry.routes('p'), []));
    assert.deepEqual(await reader.registry.routes('q'), []);
    const inspect = inspector(t, redis.url);
    assert.deepEqual(await inspect.hkeys(`${redis.prefix}{t:p}routes`), ['d1']);

    const survivor = await startLeaseNode(t, { REDIS_URL: redis.url }, redis.prefix, 'survivor', { ttlMs: 600 });
    await survivor.registry.add('p', 's1');
    await eventually(async () => assert.deepEqual(registryKeys(await scanKeys(inspect, redis.prefix)), [`${redis.prefix}{n:${survivor.lease.id}}tunnels`, `${redis.prefix}{t:p}routes`].sort()));
    assert.deepEqual(await inspect.hvals(`${redis.prefix}{t:p}routes`), [survivor.lease.id]);
    assert.deepEqual(await reader.registry.routes('p'), [{ node: 'survivor', sidecar: 's1' }]);
    assert.deepEqual(await leaseNodes(inspect, redis.prefix), ['survivor']);
  });

  test('a lost lease (Redis restarted empty) writes every route again under the new lease', async (t) => {
    const redis = await startRedis(t);
    const node = await startLeaseNode(t, { REDIS_URL: redis.url }, redis.prefix, 'n1', { ttlMs: 600 });
    const other = await startLeaseNode(t, { REDIS_URL: redis.url }, redis.prefix, 'n2', { ttlMs: 600 });
    const sidecars = Array.from({ length: 30 }, (_, i) => `s${i}`);
    for (const sidecar of sidecars) await node.registry.add('p', sidecar);
    await node.registry.add('q', 'q1');
    const before = node.lease.id;

    const inspect = inspector(t, redis.url);
    await inspect.flushall();
    const routes = async () => (await other.registry.routes('p')).map((route) => route.sidecar).sort();
    await eventually(async () => assert.deepEqual(await routes(), [...sidecars].sort()));
    assert.notEqual(node.lease.id, before);
    assert.deepEqual(await other.registry.routes('q'), [{ node: 'n1', sidecar: 'q1' }]);
    assert.equal(await inspect.scard(`${redis.prefix}{n:${node.lease.id}}tunnels`), sidecars.length + 1);

    // The new lease is the one that counts: a removal now is fenced by it.
    await node.registry.remove('p', 's0');
    assert.ok(!(await routes()).includes('s0'));
  });
});

describe('RedisRegistry: outages', () => {
  test('Redis unreachable: remove resolves and is applied once Redis answers; routes and add reject', async (t) => {
    const redis = await startRedis(t);
    const proxy = await RedisProxy.start(t, redis.port);
    const node = await startLeaseNode(t, { REDIS_URL: proxy.url }, redis.prefix, 'n1', { ttlMs: 2000 });
    const other = await startLeaseNode(t, { REDIS_URL: redis.url }, redis.prefix, 'n2', { ttlMs: 2000 });
    await node.registry.add('p', 'stays');
    await node.registry.add('p', 'goes');
    const cutOff = async () => {
      proxy.cut();
      await eventually(() => assert.notEqual(node.clients.commands.status, 'ready'));
    };

    await cutOff();
    await node.registry.remove('p', 'goes');
    await assert.rejects(node.registry.routes('p'));
    proxy.heal();
    const inspect = inspector(t, redis.url);
    await eventually(async () => assert.deepEqual(await inspect.hkeys(`${redis.prefix}{t:p}routes`), ['stays']));
    // The lease's index entry goes after the route it names (leased-routes.ts): a moment later.
    await eventually(async () => assert.deepEqual(await inspect.smembers(`${redis.prefix}{n:${node.lease.id}}tunnels`), ['p/stays']));
    assert.deepEqual(await other.registry.routes('p'), [{ node: 'n1', sidecar: 'stays' }]);

    await cutOff();
    await assert.rejects(node.registry.add('p', 'never'));
    proxy.heal();
    await eventually(async () => assert.deepEqual(await node.registry.routes('p'), [{ node: 'n1', sidecar: 'stays' }]));
  });

  test('an add whose replies never come rejects at the command timeout, and the next heartbeat removes what it wrote', async (t) => {
    const redis = await startRedis(t);
    const proxy = await RedisProxy.start(t, redis.port);
    // The lease (4 s) outlives the 2 s the add waits: the heartbeat, not a reaper, removes it.
    const node = await startLeaseNode(t, { REDIS_URL: proxy.url }, redis.prefix, 'n1', { ttlMs: 6000 });
    const inspect = inspector(t, redis.url);
    const lease = node.lease.id;
    const index = `${redis.prefix}{n:${lease}}tunnels`;

    proxy.holdReplies();
    const added = node.registry.add('p', 'stalled');
    await eventually(async () => assert.deepEqual(await inspect.smembers(index), ['p/stalled']));
    await assert.rejects(added);
    proxy.releaseReplies();
    await eventually(async () => assert.equal(await inspect.exists(index), 0));
    assert.deepEqual(registryKeys(await scanKeys(inspect, redis.prefix)), []);
    assert.deepEqual(await node.registry.routes('p'), []);
    assert.equal(node.lease.id, lease);
  });
});

describe('RedisRegistry: one lease with presence', () => {
  test('presence and the registry hang on one lease, which goes only once both left cleanly', async (t) => {
    const redis = await startRedis(t);
    const node = await startLeaseNode(t, { REDIS_URL: redis.url }, redis.prefix, 'n1', { presence: true });
    const inspect = inspector(t, redis.url);
    await node.presence.addDevice({ user: 'u', device: 'd', session: 's', node: 'n1' });
    await node.registry.add('p', 'sidecar');
    assert.deepEqual(await inspect.zrange(`${redis.prefix}{leases}nodes`, 0, -1), [node.lease.id]);

    await node.registry.close();
    assert.deepEqual(registryKeys(await scanKeys(inspect, redis.prefix)), []);
    assert.deepEqual(await leaseNodes(inspect, redis.prefix), ['n1'], 'the lease went while presence still held it');
    await node.presence.removeDevice({ user: 'u', device: 'd', session: 's', node: 'n1' });
    await node.presence.close();
    assert.deepEqual(await scanKeys(inspect, redis.prefix), []);
  });

  test('routes the registry could not withdraw at close keep the lease, which is left to expire', async (t) => {
    const redis = await startRedis(t);
    const proxy = await RedisProxy.start(t, redis.port);
    const node = await startLeaseNode(t, { REDIS_URL: proxy.url }, redis.prefix, 'n1', { presence: true });
    await node.registry.add('p', 'sidecar');

    proxy.cut();
    await eventually(() => assert.notEqual(node.clients.commands.status, 'ready'));
    await node.registry.close();
    proxy.heal();
    await eventually(() => assert.equal(node.clients.commands.status, 'ready'));
    await node.presence.close();

    const inspect = inspector(t, redis.url);
    assert.deepEqual(await leaseNodes(inspect, redis.prefix), ['n1']);
    assert.deepEqual(await inspect.hvals(`${redis.prefix}{t:p}routes`), [node.lease.id]);
  });
});
