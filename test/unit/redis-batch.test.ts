import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeBatch, encodeBatch, hashTag, RedisBus, redisChannel } from '../../src/bus/redis-bus';
import type { RedisClient } from '../../src/bus/redis-clients';
import { createLogger } from '../../src/log/logger';
import { eventually } from '../helpers/eventually';

test('batches round-trip any messages, in order', () => {
  assert.deepEqual(decodeBatch(encodeBatch(['a', '', '12:34', 'é✓🎉\n{"x":1}'])), ['a', '', '12:34', 'é✓🎉\n{"x":1}']);
  fc.assert(fc.property(fc.array(fc.string({ unit: 'grapheme' }), { maxLength: 20 }), (messages) => assert.deepEqual(decodeBatch(encodeBatch(messages)), messages)));
});

test('malformed batches are rejected, never thrown', () => {
  for (const bad of ['x', '3:ab', ':a', '-1:', '99999999999:a', '1:a2'])
    assert.equal(decodeBatch(bad), undefined, bad);
  fc.assert(fc.property(fc.string(), (s) => void decodeBatch(s)));
});

test("a user's channels share one cluster slot (hash tag)", () => {
  assert.equal(hashTag('u:ann'), 'u:ann');
  assert.equal(hashTag('d:ann/phone'), 'u:ann');
  assert.equal(hashTag('p:ann'), 'u:ann');
  assert.equal(hashTag('r:lobby'), 'r:lobby');
  assert.equal(redisChannel('sb:', 'd:a:b/c'), 'sb:{u:a:b}d:a:b/c');
});

/**
 * Stands in for ioredis: records the script calls and SPUBLISHes the bus makes, and answers each
 * PUBLISH with its position in the call, so a test can tell which batch a waiter was told about.
 */
class RecordingRedis extends EventEmitter {
  readonly status = 'ready';
  readonly sent: string[][] = [];
  defineCommand(): void {}
  sbPublishBatches(...args: (string | Buffer)[]): Promise<number[]> {
    this.sent.push(args.map(String));
    return Promise.resolve(Array.from({ length: args.length / 2 }, (_, i) => i));
  }
  spublish(channel: string, payload: Buffer): Promise<number> {
    this.sent.push([channel, String(payload)]);
    return Promise.resolve(this.sent.length - 1);
  }
}

function recordingBus(sharded: boolean): { bus: RedisBus; redis: RecordingRedis } {
  const redis = new RecordingRedis();
  const client = redis as unknown as RedisClient;
  return { bus: new RedisBus({ commands: client, subscriber: client, prefix: 'sb:', sharded, logger: createLogger('silent') }), redis };
}

for (const sharded of [false, true])
  test(`a turn's batches keep a user's channels in publish order and still gather each run (${sharded ? 'SPUBLISH per batch' : 'one script call'})`, async () => {
    const { bus, redis } = recordingBus(sharded);
    const told = new Map<string, number | undefined>();
    const publish = (channel: string, message: string) => bus.publishThen(channel, message, { published: (count) => told.set(message, count) });
    // bob's channels share a tag: a switch between them begins a new batch. carol's do not split bob's
    // batches, nor bob's hers: her two messages still go out together.
    publish('u:bob', 'm1');
    publish('d:bob/d1', 'm2');
    publish('u:carol', 'c1');
    publish('u:bob', 'm3');
    publish('p:bob', 'm4');
    publish('u:carol', 'c2');
    publish('u:bob', 'm5');
    publish('u:bob', 'm6');
    await eventually(() => assert.equal(told.size, 8));
    const batches = [
      ['sb:{u:bob}u:bob', '2:m1'],
      ['sb:{u:bob}d:bob/d1', '2:m2'],
      ['sb:{u:carol}u:carol', '2:c12:c2'],
      ['sb:{u:bob}u:bob', '2:m3'],
      ['sb:{u:bob}p:bob', '2:m4'],
      ['sb:{u:bob}u:bob', '2:m52:m6'],
    ];
    assert.deepEqual(redis.sent, sharded ? batches : [batches.flat()]);
    // Each waiter hears its own batch's count (here: the batch's position).
    assert.deepEqual(Object.fromEntries(told), { m1: 0, m2: 1, c1: 2, c2: 2, m3: 3, m4: 4, m5: 5, m6: 5 });
    await bus.close();
  });
