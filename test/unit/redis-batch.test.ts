import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeBatch, encodeBatch, hashTag, redisChannel } from '../../src/bus/redis-bus';

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
