// One contract for every PresenceStore implementation; the Redis store adds its factory.
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { connectRedis } from '../../src/bus/redis-clients';
import { loadConfig } from '../../src/config/load';
import { createLogger } from '../../src/log/logger';
import { LeaseKeeper } from '../../src/presence/lease-keeper';
import { MemoryPresence } from '../../src/presence/memory-presence';
import { RedisPresence } from '../../src/presence/redis-presence';
import { TEST_SECRET } from '../helpers/node';
import { startRedis } from '../helpers/redis';
import type { PresenceStore, StoreChanges } from '../../src/presence/presence';
import Redis from 'ioredis';
import { eventually } from '../helpers/eventually';
import { RedisProxy } from '../helpers/redis-proxy';

export interface PresenceFactory {
  name: string;
  create(): Promise<{ store: PresenceStore; cleanup: () => Promise<void> }>;
}

export const memoryPresenceFactory: PresenceFactory = {
  name: 'memory',
  create: () => Promise.resolve({ store: new MemoryPresence(), cleanup: () => Promise.resolve() }),
};

/** The store's answer as a plain object (stores answer with null-prototype records). */
async function statusOf(store: PresenceStore, users: readonly string[]): Promise<Record<string, string>> {
  return { ...(await store.status(users)) };
}

export function presenceContract(factory: PresenceFactory): void {
  describe(`PresenceStore contract: ${factory.name}`, () => {
    test('online with the first device, offline with the last', async (t) => {
      const { store, cleanup } = await factory.create();
      t.after(cleanup);
      assert.deepEqual(await statusOf(store, ['u1', 'u2']), { u1: 'offline', u2: 'offline' });
      assert.deepEqual(await store.addDevice({ user: 'u1', device: 'd1', session: 's1', node: 'n1' }), { wentOnline: true });
      assert.deepEqual(await store.addDevice({ user: 'u1', device: 'd2', session: 's2', node: 'n2' }), { wentOnline: false });
      assert.deepEqual(await statusOf(store, ['u1', 'u2']), { u1: 'online', u2: 'offline' });
      assert.deepEqual(await store.removeDevice({ user: 'u1', device: 'd1', session: 's1', node: 'n1' }), { wentOffline: false });
      assert.deepEqual(await store.removeDevice({ user: 'u1', device: 'd2', session: 's2', node: 'n2' }), { wentOffline: true });
      assert.deepEqual(await statusOf(store, ['u1']), { u1: 'offline' });
    });

    test('a second connection of the same device replaces the first; the replaced one removes nothing', async (t) => {
      const { store, cleanup } = await factory.create();
      t.after(cleanup);
      await store.addDevice({ user: 'u1', device: 'd1', session: 'old', node: 'n1' });
      const second = await store.addDevice({ user: 'u1', device: 'd1', session: 'new', node: 'n2' });
      assert.deepEqual(second, { wentOnline: false, replaced: { session: 'old', node: 'n1' } });
      assert.deepEqual(await store.removeDevice({ user: 'u1', device: 'd1', session: 'old', node: 'n1' }), { wentOffline: false });
      assert.deepEqual(await statusOf(store, ['u1']), { u1: 'online' });
    });

    test('rooms list every member, the new one included, and forget leavers', async (t) => {
      const { store, cleanup } = await factory.create();
      t.after(cleanup);
      assert.deepEqual(await store.joinRoom('r', { user: 'u1', device: 'd1', session: 's1', node: 'n1' }), [{ user: 'u1', device: 'd1' }]);
      const members = await store.joinRoom('r', { user: 'u2', device: 'd2', session: 's2', node: 'n2' });
      assert.deepEqual(
        members.sort((a, b) => a.user.localeCompare(b.user)),
        [
          { user: 'u1', device: 'd1' },
          { user: 'u2', device: 'd2' },
        ],
      );
      assert.equal(await store.leaveRoom('r', { user: 'u1', device: 'd1', session: 's1' }), true);
      assert.equal(await store.leaveRoom('r', { user: 'u1', device: 'd1', session: 's1' }), false, 'a second leave removes nothing');
      assert.deepEqual(await store.members('r'), [{ user: 'u2', device: 'd2' }]);
      assert.deepEqual(await store.joinRoom('r', { user: 'u2', device: 'd2', session: 's2', node: 'n2' }), [{ user: 'u2', device: 'd2' }]);
      assert.deepEqual(await store.members('nobody-here'), []);
    });

    test('user, device and room names that are Object.prototype members are plain names', async (t) => {
      const { store, cleanup } = await factory.create();
      t.after(cleanup);
      const names = ['__proto__', 'constructor', 'toString'];
      for (const name of names) {
        assert.deepEqual(await store.addDevice({ user: name, device: name, session: `s-${name}`, node: 'n1' }), { wentOnline: true });
        assert.deepEqual(await store.joinRoom(name, { user: name, device: name, session: `s-${name}`, node: 'n1' }), [{ user: name, device: name }]);
      }
      const status = await statusOf(store, [...names, 'hasOwnProperty']);
      assert.deepEqual(Object.entries(status).sort(), [...names.map((n) => [n, 'online']), ['hasOwnProperty', 'offline']].sort());
      for (const name of names) {
        assert.equal(await store.leaveRoom(name, { user: name, device: name, session: `s-${name}` }), true);
        assert.deepEqual(await store.removeDevice({ user: name, device: name, session: `s-${name}`, node: 'n1' }), { wentOffline: true });
      }
      assert.deepEqual(Object.values(await statusOf(store, names)), ['offline', 'offline', 'offline']);
    });
  });
}

presenceContract(memoryPresenceFactory);

export const redisPresenceFactory: PresenceFactory = {
  name: 'redis',
  async create() {
    const server = await startRedis(undefined);
    const config = loadConfig({ JWT_SECRET: TEST_SECRET, REDIS_URL: server.url });
    const clients = await connectRedis(config, createLogger('silent'));
    const lease = new LeaseKeeper({ redis: clients.commands, prefix: server.prefix, nodeId: 'n1', ttlMs: 15000, logger: createLogger('silent') });
    const store = new RedisPresence({ redis: clients.commands, prefix: server.prefix, lease, logger: createLogger('silent') });
    await store.start();
    return {
      store,
      cleanup: async () => {
        await store.close();
        await clients.close();
        await server.stop(true);
      },
    };
  },
};

presenceContract(redisPresenceFactory);

// What only the Redis store has to do: leases, restore, deferred writes (issue 12).

/** A started Redis store on `url` with a short lease (heartbeats every 150 ms), recording every change it reports; closed in teardown. */
async function watchedStore(t: TestContext, url: string, prefix: string) {
  const clients = await connectRedis(loadConfig({ JWT_SECRET: TEST_SECRET, REDIS_URL: url }), createLogger('silent'));
  t.after(() => clients.close());
  const lease = new LeaseKeeper({ redis: clients.commands, prefix, nodeId: 'n1', ttlMs: 600, logger: createLogger('silent') });
  const store = new RedisPresence({ redis: clients.commands, prefix, lease, logger: createLogger('silent') });
  const changes: StoreChanges[] = [];
  store.onChanges((c) => void changes.push(c));
  await store.start();
  t.after(() => store.close());
  return { store, changes, clients };
}
describe('RedisPresence: leases and restore', () => {
  test('a lost lease is a restore: every device and membership is written again and reported, and a write that fails is retried until it lands', async (t) => {
    const server = await startRedis(t);
    const { store, changes } = await watchedStore(t, server.url, server.prefix);
    const users = Array.from({ length: 20 }, (_, i) => `u${i}`);
    for (const user of users) await store.addDevice({ user, device: 'd', session: `s-${user}`, node: 'n1' });
    await store.joinRoom('r', { user: 'u0', device: 'd', session: 's-u0', node: 'n1' });
    assert.equal(changes.length, 0);

    // Redis loses everything, and one user's key is of the wrong type: that user's write fails.
    const direct = new Redis(server.url);
    t.after(() => direct.disconnect());
    await direct.flushall();
    await direct.set(`${server.prefix}{u:u7}devices`, 'not a hash');
    const reported = (kind: 'online' | 'joined') => changes.flatMap((c) => (kind === 'online' ? c.online : c.joined.map((m) => `${m.room}:${m.user}`)));
    await eventually(() => {
      assert.deepEqual(reported('online').sort(), users.filter((u) => u !== 'u7').sort());
      assert.deepEqual(reported('joined'), ['r:u0']);
    });
    assert.equal((await statusOf(store, ['u7'])).u7, 'online', 'the wrong-typed key reads as present');

    await direct.del(`${server.prefix}{u:u7}devices`);
    await eventually(() => assert.ok(reported('online').includes('u7')));
    assert.deepEqual(Object.values(await statusOf(store, users)), users.map(() => 'online'));
    assert.deepEqual(await store.members('r'), [{ user: 'u0', device: 'd' }]);
    assert.equal(reported('online').length, users.length, 'each user reported online once');
  });
});

describe('RedisPresence: outages', () => {
  test('connections that come and go while Redis is unreachable leave nothing behind once it answers, and nothing was queued for them', async (t) => {
    const server = await startRedis(t);
    const proxy = await RedisProxy.start(t, server.port);
    const { store, changes, clients } = await watchedStore(t, proxy.url, server.prefix);
    // Registered before the outage: their goodbyes will be lost in it.
    const before = Array.from({ length: 50 }, (_, i) => ({ user: `before${i}`, device: 'd', session: `sb${i}`, node: 'n1' }));
    for (const conn of before) await store.addDevice(conn);

    proxy.cut();
    await eventually(() => assert.notEqual(clients.commands.status, 'ready'));
    const failed = async (write: () => Promise<unknown>) => assert.ok(await write().then(() => false, () => true), 'a write succeeded while Redis was cut off');
    for (const conn of before) await failed(() => store.removeDevice(conn));
    for (let i = 0; i < 500; i++) {
      const conn = { user: `churn${i % 50}`, device: 'd', session: `sc${i}`, node: 'n1' };
      await failed(() => store.addDevice(conn));
      await failed(() => store.removeDevice(conn));
    }
    const stays = { user: 'stays', device: 'd', session: 'ss', node: 'n1' };
    await failed(() => store.addDevice(stays));
    proxy.heal();

    const direct = new Redis(server.url);
    t.after(() => direct.disconnect());
    const offline = () => changes.flatMap((c) => c.offline);
    await eventually(() => assert.deepEqual(offline().sort(), before.map((c) => c.user).sort()), 10_000);
    assert.deepEqual(await statusOf(store, ['before0', 'churn0', 'stays']), { before0: 'offline', churn0: 'offline', stays: 'online' });
    const userKeys = (await direct.keys(`${server.prefix}{u:*`)).sort();
    assert.deepEqual(userKeys, [`${server.prefix}{u:stays}devices`]);
    // Reported once the connection has been up for a heartbeat (watchers re-read then, lease-keeper.ts).
    await eventually(() => assert.ok(changes.some((c) => c.recovered)));
    assert.deepEqual(changes.flatMap((c) => c.online), ['stays']);
  });
});
