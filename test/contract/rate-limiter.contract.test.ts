// One contract for every UserRateLimiter: the memory one (one node) and the
// cluster one (local decisions reconciled with Redis).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { connectRedis } from '../../src/bus/redis-clients';
import { loadConfig } from '../../src/config/load';
import { createLogger } from '../../src/log/logger';
import { ClusterRateLimiter } from '../../src/ratelimit/cluster-rate-limiter';
import { MemoryRateLimiter, type RateDecision, type UserRateLimiter } from '../../src/ratelimit/rate-limiter';
import { eventually } from '../helpers/eventually';
import { TEST_SECRET } from '../helpers/node';
import { startRedis } from '../helpers/redis';

interface LimiterFactory {
  name: string;
  create(points: number, durationS: number): Promise<{ limiter: UserRateLimiter; cleanup: () => Promise<void> }>;
}

/** Decisions are values or promises (when one must wait for the store). */
const settleAll = (results: (RateDecision | Promise<RateDecision>)[]): Promise<RateDecision[]> => Promise.all(results.map((r) => Promise.resolve(r)));

const factories: LimiterFactory[] = [
  {
    name: 'memory',
    create: (points, durationS) => Promise.resolve({ limiter: new MemoryRateLimiter({ points, durationS }), cleanup: () => Promise.resolve() }),
  },
  {
    name: 'cluster (Redis)',
    async create(points, durationS) {
      const server = await startRedis(undefined);
      const clients = await connectRedis(loadConfig({ JWT_SECRET: TEST_SECRET, REDIS_URL: server.url }), createLogger('silent'));
      const limiter = new ClusterRateLimiter({ redis: clients.commands, prefix: server.prefix, points, durationS, logger: createLogger('silent') });
      return {
        limiter,
        cleanup: async () => {
          limiter.close();
          await clients.close();
          await server.stop(true);
        },
      };
    },
  },
];

for (const factory of factories) {
  describe(`UserRateLimiter contract: ${factory.name}`, () => {
    test('allows the budget, then rejects with a retry delay inside the window', async (t) => {
      const { limiter, cleanup } = await factory.create(5, 10);
      t.after(cleanup);
      const decisions = await settleAll(Array.from({ length: 8 }, () => limiter.consume('u1')));
      assert.deepEqual(decisions.map((d) => d.allowed), [true, true, true, true, true, false, false, false]);
      for (const d of decisions.slice(5)) assert.ok(!d.allowed && d.retryAfterMs > 0 && d.retryAfterMs <= 10_000);
    });

    test('decides in call order: once a decision waits (near the limit), every later one waits behind it', async (t) => {
      const { limiter, cleanup } = await factory.create(20, 10);
      t.after(cleanup);
      const results = Array.from({ length: 30 }, () => limiter.consume('u'));
      const firstWaiting = results.findIndex((r) => r instanceof Promise);
      if (firstWaiting !== -1) assert.ok(results.slice(firstWaiting).every((r) => r instanceof Promise), 'a decision made at once after one that waits');
      const order: number[] = [];
      await Promise.all(results.map((r, i) => Promise.resolve(r).then(() => order.push(i))));
      assert.deepEqual(order, Array.from({ length: 30 }, (_, i) => i));
      const decisions = await settleAll(results);
      assert.deepEqual(
        decisions.map((d) => d.allowed),
        Array.from({ length: 30 }, (_, i) => i < 20),
      );
    });

    test('decides at once while the user is far from the limit (no promise per frame)', async (t) => {
      const { limiter, cleanup } = await factory.create(1000, 10);
      t.after(cleanup);
      const results = Array.from({ length: 50 }, (_, i) => limiter.consume(`u${i % 3}`));
      assert.ok(results.every((r) => !(r instanceof Promise) && r.allowed));
    });

    test('users are independent', async (t) => {
      const { limiter, cleanup } = await factory.create(2, 10);
      t.after(cleanup);
      await limiter.consume('a');
      await limiter.consume('a');
      assert.equal((await limiter.consume('a')).allowed, false);
      assert.equal((await limiter.consume('b')).allowed, true);
    });

    test('the budget comes back after the window', async (t) => {
      const { limiter, cleanup } = await factory.create(2, 1);
      t.after(cleanup);
      await limiter.consume('a');
      await limiter.consume('a');
      const rejected = await limiter.consume('a');
      assert.equal(rejected.allowed, false);
      await eventually(async () => assert.equal((await limiter.consume('a')).allowed, true), 5000, 100);
    });
  });
}

test('cluster limiter: two nodes share one budget through Redis', async (t) => {
  const server = await startRedis(t);
  const config = loadConfig({ JWT_SECRET: TEST_SECRET, REDIS_URL: server.url });
  const limiters = await Promise.all(
    [1, 2].map(async () => {
      const clients = await connectRedis(config, createLogger('silent'));
      const limiter = new ClusterRateLimiter({ redis: clients.commands, prefix: server.prefix, points: 100, durationS: 10, logger: createLogger('silent') });
      t.after(async () => {
        limiter.close();
        await clients.close();
      });
      return limiter;
    }),
  );
  // Each node sees 100 frames in bursts of 10, reconciled in between (as a steady flood would be).
  let allowed = 0;
  for (let burst = 0; burst < 10; burst++) {
    for (const limiter of limiters) {
      const decisions = await settleAll(Array.from({ length: 10 }, () => limiter.consume('flood')));
      allowed += decisions.filter((d) => d.allowed).length;
    }
    await new Promise((resolve) => setTimeout(resolve, 30));
  }
  assert.ok(allowed >= 80 && allowed <= 120, `allowed ${allowed} of a global budget of 100`);
});
