// The queues a client can grow are bounded (issue 12): frames for a connection
// before its welcome, and its frames waiting for a cluster rate-limit decision.
// Both wait on Redis, so a proxy holding Redis's replies makes them grow on
// purpose.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventually } from '../helpers/eventually';
import { http } from '../helpers/http';
import { startTestNode, type TestNode } from '../helpers/node';
import { startRedis } from '../helpers/redis';
import { RedisProxy } from '../helpers/redis-proxy';
import { TestClient } from '../helpers/ws-client';

async function overflows(node: TestNode, queue: string): Promise<number> {
  const text = (await http(node.port, 'GET', '/metrics')).body;
  const line = text.split('\n').find((l) => l.startsWith(`signaling_queue_overflows_total{queue="${queue}"`));
  return Number(line?.split(' ').pop() ?? 0);
}

test('frames for a connection before its welcome are bounded by MAX_BUFFERED_BYTES: past it the connection closes with 4010', async (t) => {
  const redis = await startRedis(t);
  const proxy = await RedisProxy.start(t, redis.port);
  const node = await startTestNode(t, { REDIS_URL: proxy.url, REDIS_PREFIX: redis.prefix, MAX_BUFFERED_BYTES: '1024', RATE_LIMIT_POINTS: '100000' });
  proxy.holdReplies();
  // Registration waits for Redis: every pong waits behind the welcome.
  const client = await TestClient.connect(node.port, { token: node.token({ sub: 'chatty' }) });
  t.after(() => client.close());
  for (let i = 0; i < 100; i++) client.send({ type: 'ping' });
  assert.deepEqual(await client.waitClosed(), { code: 4010, reason: 'slow_consumer' });
  proxy.releaseReplies();
  assert.deepEqual(client.frames, [], 'nothing may be sent before the welcome');
  await eventually(async () => assert.equal(await overflows(node, 'early_frames'), 1));

  // A connection that stays under the bound gets its welcome first, then what waited behind it.
  const calm = await TestClient.connect(node.port, { token: node.token({ sub: 'calm' }) });
  t.after(() => calm.close());
  calm.send({ type: 'ping', id: 'p1' });
  await calm.next('pong');
  assert.deepEqual(calm.frames.map((f) => f.type), ['welcome', 'pong']);
});

test('frames waiting for a cluster rate-limit decision are bounded by MAX_BUFFERED_BYTES: past it a frame is refused with rate_limited', async (t) => {
  const redis = await startRedis(t);
  const proxy = await RedisProxy.start(t, redis.port);
  const node = await startTestNode(t, { REDIS_URL: proxy.url, REDIS_PREFIX: redis.prefix, MAX_BUFFERED_BYTES: '4096', RATE_LIMIT_POINTS: '1000', RATE_LIMIT_STRIKES: '1000' });
  const sender = await TestClient.welcomed(node.port, node.token({ sub: 'sender' }));
  const local = await TestClient.welcomed(node.port, node.token({ sub: 'local' }));
  t.after(() => [sender, local].forEach((c) => c.close()));
  // With Redis's replies held, the limiter's reconciliation cannot finish: past what the node may
  // allow on its own, the sender's frames wait for it.
  proxy.holdReplies();
  const payload = 'x'.repeat(1000);
  for (let i = 0; i < 300; i++) sender.send({ type: 'message', to: 'local', id: `m${i}`, payload });
  await eventually(async () => assert.ok((await overflows(node, 'frames_waiting')) > 0));
  const refused = await eventually(() => {
    const errors = sender.all('error').filter((f) => f.code === 'rate_limited');
    assert.ok(errors.length > 0);
    return errors;
  });
  assert.equal(typeof refused[0]?.retry_after_ms, 'number');
  proxy.releaseReplies();
  // Every frame got exactly one answer, and the connection stayed.
  await eventually(() => {
    const answered = new Set(sender.frames.map((f) => f.id).filter((id) => typeof id === 'string'));
    assert.equal(answered.size, 300);
  }, 10_000);
  assert.equal(sender.closed, undefined);
});
