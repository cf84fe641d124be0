// One contract for every UserRateLimiter: the memory one (one node) and the
// cluster one (local decisions reconciled with Redis).
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { connectRedis } from '../../src/bus/redis-clients';
import { loadConfig } from '../../src/config/load';
import { createLogger } from '../../src/log/logger';
import { Metrics } from '../../src/metrics/metrics';
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

    test('decides in call order: the budget goes to the first frames, and none is allowed ahead of one that waits', async (t) => {
      const { limiter, cleanup } = await factory.create(20, 10);
      t.after(cleanup);
      const results = Array.from({ length: 30 }, () => limiter.consume('u'));
      const firstWaiting = results.findIndex((r) => r instanceof Promise);
      if (firstWaiting !== -1)
        for (const result of results.slice(firstWaiting)) assert.ok(result instanceof Promise || !result.allowed, 'a frame allowed at once after one that waits');
      const allowedOrder: number[] = [];
      await Promise.all(results.map((r, i) => Promise.resolve(r).then((d) => d.allowed && allowedOrder.push(i))));
      assert.deepEqual(allowedOrder, Array.from({ length: 20 }, (_, i) => i));
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
  const [first, second] = await Promise.all(
    [1, 2].map(async () => {
      const clients = await connectRedis(config, createLogger('silent'));
      const limiter = new ClusterRateLimiter({ redis: clients.commands, prefix: server.prefix, points: 100, durationS: 10, logger: createLogger('silent') });
      t.after(async () => {
        limiter.close();
        await clients.close();
      });
      return { limiter, redis: clients.commands };
    }),
  );
  if (first === undefined || second === undefined) return assert.fail('two limiters');
  const consume = (limiter: UserRateLimiter, frames: number) => settleAll(Array.from({ length: frames }, () => limiter.consume('flood')));

  assert.ok((await consume(first.limiter, 60)).every((d) => d.allowed));
  // Frames under the reporting threshold go to Redis on a timer: wait until all 60 are counted there.
  await eventually(async () => assert.equal(await first.redis.get(`${server.prefix}rl:flood`), '60'));
  // The second node has seen none of them, yet allows exactly what the first left of the budget.
  assert.deepEqual(
    (await consume(second.limiter, 60)).map((d) => d.allowed),
    Array.from({ length: 60 }, (_, i) => i < 40),
  );
});

describe('cluster limiter: what waits for Redis is bounded', () => {
  /** A limiter on its own Redis, with a metrics registry to read the overflow counter from. */
  async function clusterLimiter(t: TestContext, options: { points: number; maxWaiting?: number }) {
    const server = await startRedis(t);
    const clients = await connectRedis(loadConfig({ JWT_SECRET: TEST_SECRET, REDIS_URL: server.url }), createLogger('silent'));
    const metrics = new Metrics({ node: 't' });
    const limiter = new ClusterRateLimiter({ redis: clients.commands, prefix: server.prefix, durationS: 10, logger: createLogger('silent'), metrics, ...options });
    t.after(async () => {
      limiter.close();
      await clients.close();
    });
    const queueFull = async (bound: 'user' | 'node') =>
      (await metrics.rateLimitQueueFull.get()).values.find((v) => v.labels.bound === bound)?.value ?? 0;
    return { limiter, queueFull };
  }

  test('per user: no more frames wait than the budget has left; the rest are refused at once', async (t) => {
    const { limiter, queueFull } = await clusterLimiter(t, { points: 20 });
    // One event-loop turn: no Redis reply can come back meanwhile, so every frame past the
    // threshold would wait if nothing bounded it.
    const results = Array.from({ length: 1000 }, () => limiter.consume('flood'));
    const waiting = results.filter((r) => r instanceof Promise).length;
    const allowedAtOnce = results.filter((r) => !(r instanceof Promise) && r.allowed).length;
    assert.ok(waiting > 0 && waiting <= 20 - allowedAtOnce, `${waiting} frames wait; ${allowedAtOnce} were allowed at once of a budget of 20`);
    const refusedAtOnce = results.filter((r): r is RateDecision => !(r instanceof Promise) && !r.allowed);
    assert.equal(refusedAtOnce.length, 1000 - waiting - allowedAtOnce);
    for (const r of refusedAtOnce) assert.ok(!r.allowed && r.retryAfterMs > 0 && r.retryAfterMs <= 10_000);
    assert.equal(await queueFull('user'), refusedAtOnce.length);
    const decisions = await settleAll(results);
    assert.deepEqual(
      decisions.map((d) => d.allowed),
      Array.from({ length: 1000 }, (_, i) => i < 20),
    );
  });

  test('per node: past maxWaiting, frames are decided from the node\'s own count instead of waiting (a slow store limits no one)', async (t) => {
    const { limiter, queueFull } = await clusterLimiter(t, { points: 10, maxWaiting: 10 });
    // Points 10 reconcile every frame: each user's third frame in a turn waits for the reply to its first.
    const users = Array.from({ length: 30 }, (_, i) => `u${i}`);
    const results = [1, 2, 3].flatMap(() => users.map((user) => limiter.consume(user)));
    assert.equal(results.filter((r) => r instanceof Promise).length, 10);
    assert.equal(await queueFull('node'), 20);
    assert.equal(await queueFull('user'), 0);
    assert.ok((await settleAll(results)).every((d) => d.allowed), 'far under the budget, every frame is allowed');
  });
});
