// One contract for every Bus implementation (STYLE: socket.io's adapter
// suites). Each implementation registers a factory that builds N "nodes"
// sharing one backend; the Redis bus adds its factory here.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { channels, type Bus } from '../../src/bus/bus';
import { MemoryBroker, MemoryBus } from '../../src/bus/memory-bus';
import { RedisBus } from '../../src/bus/redis-bus';
import { connectRedis } from '../../src/bus/redis-clients';
import { loadConfig } from '../../src/config/load';
import { createLogger } from '../../src/log/logger';
import { TEST_SECRET } from '../helpers/node';
import { startRedis } from '../helpers/redis';
import { eventually } from '../helpers/eventually';

export interface BusFactory {
  name: string;
  /** Builds `count` buses on one shared backend; the returned cleanup closes them all. */
  create(count: number): Promise<{ buses: Bus[]; cleanup: () => Promise<void> }>;
}

export const memoryBusFactory: BusFactory = {
  name: 'memory',
  create(count) {
    const broker = new MemoryBroker();
    const buses = Array.from({ length: count }, () => new MemoryBus(broker));
    return Promise.resolve({ buses, cleanup: async () => void (await Promise.all(buses.map((b) => b.close()))) });
  },
};

const silentLogger = () => createLogger('silent');

export function busContract(factory: BusFactory): void {
  describe(`Bus contract: ${factory.name}`, () => {
    test('delivers to every subscribed node, the publisher included, and counts them', async (t) => {
      const { buses, cleanup } = await factory.create(3);
      t.after(cleanup);
      const [a, b, c] = buses as [Bus, Bus, Bus];
      const got: string[][] = [[], [], []];
      await a.subscribe('ch', (m) => got[0]?.push(m));
      await b.subscribe('ch', (m) => got[1]?.push(m));
      assert.equal(await c.publish('ch', 'hello'), 2);
      assert.equal(await a.publish('ch', 'again'), 2);
      await eventually(() => {
        assert.deepEqual(got[0], ['hello', 'again']);
        assert.deepEqual(got[1], ['hello', 'again']);
        assert.deepEqual(got[2], []);
      });
    });

    test('keeps per-publisher order', async (t) => {
      const { buses, cleanup } = await factory.create(2);
      t.after(cleanup);
      const [a, b] = buses as [Bus, Bus];
      const got: string[] = [];
      await b.subscribe('order', (m) => got.push(m));
      const sent = Array.from({ length: 500 }, (_, i) => `m${i}`);
      await Promise.all(sent.map((m) => a.publish('order', m)));
      await eventually(() => assert.deepEqual(got, sent));
    });

    test('unsubscribe stops delivery and publish to nobody counts 0', async (t) => {
      const { buses, cleanup } = await factory.create(2);
      t.after(cleanup);
      const [a, b] = buses as [Bus, Bus];
      const got: string[] = [];
      await b.subscribe('gone', (m) => got.push(m));
      await b.unsubscribe('gone');
      assert.equal(await a.publish('gone', 'x'), 0);
      assert.equal(await a.publish('never-subscribed', 'x'), 0);
      assert.deepEqual(got, []);
    });

    test('messages keep arbitrary text intact', async (t) => {
      const { buses, cleanup } = await factory.create(2);
      t.after(cleanup);
      const [a, b] = buses as [Bus, Bus];
      const got: string[] = [];
      await b.subscribe('text', (m) => got.push(m));
      const text = '{"k":"dm"}\n{"payload":"é ✓ \\u0000 🎉"}\n';
      await a.publish('text', text);
      await eventually(() => assert.deepEqual(got, [text]));
    });

    test('publishThen reports each publish once, in order, across bursts larger than one flush', async (t) => {
      const { buses, cleanup } = await factory.create(2);
      t.after(cleanup);
      const [a, b] = buses as [Bus, Bus];
      const got: string[] = [];
      await b.subscribe('burst', (m) => got.push(m));
      // More than the Redis bus gathers before flushing early, multi-byte text included.
      const sent = Array.from({ length: 700 }, (_, i) => `m${i} é🎉`);
      const counts: (number | undefined)[] = [];
      for (const m of sent) a.publishThen('burst', m, { published: (count) => counts.push(count) });
      await eventually(() => assert.deepEqual(got, sent));
      await eventually(() => assert.equal(counts.length, sent.length));
      assert.ok(counts.every((c) => c === 1));
      await a.close();
      const failed = await new Promise<unknown>((resolve) => a.publishThen('burst', 'late', { published: (count, error) => resolve(count ?? error) }));
      assert.ok(failed instanceof Error);
    });

    test('publishThen to many channels in one turn: each publish gets its own channel count, each channel keeps its order', async (t) => {
      const { buses, cleanup } = await factory.create(3);
      t.after(cleanup);
      const [a, b, c] = buses as [Bus, Bus, Bus];
      // Channel i is subscribed by i % 3 nodes: none, b, or b and c.
      const channels = Array.from({ length: 300 }, (_, i) => `many-${i}`);
      const atB = new Map<string, string[]>();
      const atC = new Map<string, string[]>();
      const record = (into: Map<string, string[]>) => (m: string, ch: string) => into.set(ch, [...(into.get(ch) ?? []), m]);
      for (const [i, channel] of channels.entries()) {
        if (i % 3 >= 1) await b.subscribe(channel, record(atB));
        if (i % 3 === 2) await c.subscribe(channel, record(atC));
      }
      const counts = new Map<string, (number | undefined)[]>();
      // Two rounds in one turn: every channel appears twice in the same flush.
      for (const round of [1, 2])
        for (const channel of channels)
          a.publishThen(channel, `${channel}#${round}`, { published: (count) => counts.set(channel, [...(counts.get(channel) ?? []), count]) });
      await eventually(() => assert.equal([...counts.values()].flat().length, channels.length * 2));
      for (const [i, channel] of channels.entries()) assert.deepEqual(counts.get(channel), [i % 3, i % 3], channel);
      await eventually(() => {
        for (const [i, channel] of channels.entries()) {
          const sent = [`${channel}#1`, `${channel}#2`];
          assert.deepEqual(atB.get(channel), i % 3 >= 1 ? sent : undefined);
          assert.deepEqual(atC.get(channel), i % 3 === 2 ? sent : undefined);
        }
      });
    });

    test("keeps one publisher's order across a user's channels (u:, d:, p:) in one turn, across early flushes", async (t) => {
      const { buses, cleanup } = await factory.create(2);
      t.after(cleanup);
      const [a, b] = buses as [Bus, Bus];
      // Issue 12: u:bob, d:bob/d1 and p:bob reach the same devices; batched per channel they left as
      // u:bob [1, 3], d:bob/d1 [2], and d1 received 1, 3, 2. carol's channel, interleaved, must not
      // disturb bob's order nor lose its own.
      const bob = [channels.user('bob'), channels.device('bob', 'd1'), channels.presence('bob')] as const;
      const [user, device, presence] = bob;
      const carol = channels.user('carol');
      const atBob: string[] = [];
      const atCarol: string[] = [];
      for (const channel of bob) await b.subscribe(channel, (m) => atBob.push(m));
      await b.subscribe(carol, (m) => atCarol.push(m));
      // Runs of one channel (which may share a batch) and switches (which may not); 700 messages
      // are more than the Redis bus gathers before flushing early.
      const pattern = [user, device, user, device, device, user, user, presence, carol, device, carol, user];
      const toBob: string[] = [];
      const toCarol: string[] = [];
      const counts: (number | undefined)[] = [];
      for (let i = 0; i < 700; i++) {
        const channel = pattern[i % pattern.length] ?? user;
        const message = `${channel}#${i}`;
        (channel === carol ? toCarol : toBob).push(message);
        a.publishThen(channel, message, { published: (count) => counts.push(count) });
      }
      await eventually(() => assert.equal(counts.length, 700));
      assert.ok(counts.every((c) => c === 1));
      await eventually(() => {
        assert.deepEqual(atBob, toBob);
        assert.deepEqual(atCarol, toCarol);
      });
    });

    test('a closed bus is down and rejects publishes', async (t) => {
      const { buses, cleanup } = await factory.create(1);
      t.after(cleanup);
      const [a] = buses as [Bus];
      assert.equal(a.isUp(), true);
      await a.close();
      assert.equal(a.isUp(), false);
      await assert.rejects(a.publish('x', 'y'));
    });
  });
}

busContract(memoryBusFactory);

// The same contract on a real redis-server, through the Redis bus.
export const redisBusFactory: BusFactory = {
  name: 'redis',
  async create(count) {
    const server = await startRedis(undefined);
    const clients = await Promise.all(
      Array.from({ length: count }, () => connectRedis(loadConfig({ JWT_SECRET: TEST_SECRET, REDIS_URL: server.url }), silentLogger())),
    );
    const buses = clients.map((c) => new RedisBus({ commands: c.commands, subscriber: c.subscriber, prefix: server.prefix, sharded: false, logger: silentLogger() }));
    return {
      buses,
      cleanup: async () => {
        await Promise.all(buses.map((b) => b.close()));
        await Promise.all(clients.map((c) => c.close()));
        await server.stop(true);
      },
    };
  },
};

busContract(redisBusFactory);
