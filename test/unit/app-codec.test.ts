import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { CLIENT_FRAME_TYPES, decodeClientFrame } from '../../src/protocol/app-codec';
import { encode, type PresenceStatus } from '../../src/protocol/server-frames';

const long = 'x'.repeat(129);

describe('decodeClientFrame accepts every frame type of SPEC §3', () => {
  const valid: [string, unknown, unknown][] = [
    ['offer to user', { type: 'offer', to: 'u2', payload: { sdp: 'v=0' } }, { type: 'offer', to: 'u2', payloadJson: '{"sdp":"v=0"}' }],
    ['answer to device with id', { type: 'answer', to: 'u2', device: 'd2', id: 'm1', payload: 1 }, { type: 'answer', to: 'u2', device: 'd2', id: 'm1', payloadJson: '1' }],
    ['candidate null payload', { type: 'candidate', to: 'a:b@c.d-e_f', payload: null }, { type: 'candidate', to: 'a:b@c.d-e_f', payloadJson: 'null' }],
    ['bye without payload', { type: 'bye', to: 'u2' }, { type: 'bye', to: 'u2', payloadJson: undefined }],
    ['message', { type: 'message', to: 'u2', payload: 'hi' }, { type: 'message', to: 'u2', payloadJson: '"hi"' }],
    ['subscribe', { type: 'subscribe', room: 'r1', id: 'x' }, { type: 'subscribe', room: 'r1', id: 'x' }],
    ['unsubscribe', { type: 'unsubscribe', room: 'r1' }, { type: 'unsubscribe', room: 'r1' }],
    ['publish', { type: 'publish', room: 'r1', payload: [1, 2] }, { type: 'publish', room: 'r1', payloadJson: '[1,2]' }],
    ['presence', { type: 'presence', users: ['a', 'b'] }, { type: 'presence', users: ['a', 'b'] }],
    ['watch dedupes', { type: 'watch', users: ['a', 'a'] }, { type: 'watch', users: ['a'] }],
    ['unwatch', { type: 'unwatch', users: ['a'] }, { type: 'unwatch', users: ['a'] }],
    ['ping', { type: 'ping' }, { type: 'ping' }],
    ['refresh', { type: 'refresh', token: 'abc' }, { type: 'refresh', token: 'abc' }],
    ['id of 128 chars', { type: 'ping', id: 'i'.repeat(128) }, { type: 'ping', id: 'i'.repeat(128) }],
  ];
  for (const [name, input, expected] of valid) {
    test(name, () => {
      const result = decodeClientFrame(JSON.stringify(input));
      assert.equal(result.ok, true, JSON.stringify(result));
      if (result.ok) assert.deepEqual(result.frame, expected);
    });
  }
});

describe('decodeClientFrame rejects bad frames with the right code and echoes the id', () => {
  const invalid: [string, string, string, string | undefined][] = [
    ['not JSON', '{nope', 'bad_message', undefined],
    ['empty', '', 'bad_message', undefined],
    ['array', '[1,2]', 'bad_message', undefined],
    ['string', '"offer"', 'bad_message', undefined],
    ['null', 'null', 'bad_message', undefined],
    ['no type', '{"id":"a"}', 'bad_message', 'a'],
    ['numeric type', '{"type":5,"id":"a"}', 'bad_message', 'a'],
    ['unknown type', '{"type":"teleport","id":"a"}', 'unknown_type', 'a'],
    ['unknown type, no id', '{"type":"teleport"}', 'unknown_type', undefined],
    ['id too long', JSON.stringify({ type: 'ping', id: long }), 'bad_message', undefined],
    ['id empty', '{"type":"ping","id":""}', 'bad_message', undefined],
    ['id not string', '{"type":"ping","id":7}', 'bad_message', undefined],
    ['offer without to', '{"type":"offer","id":"a","payload":1}', 'bad_message', 'a'],
    ['offer bad user id', '{"type":"offer","to":"a b","id":"a"}', 'bad_message', 'a'],
    ['offer user id too long', JSON.stringify({ type: 'offer', to: long, id: 'a' }), 'bad_message', 'a'],
    ['offer bad device', '{"type":"offer","to":"u","device":"/","id":"a"}', 'bad_message', 'a'],
    ['subscribe bad room', '{"type":"subscribe","room":"a/b","id":"a"}', 'bad_message', 'a'],
    ['subscribe room too long', JSON.stringify({ type: 'subscribe', room: long }), 'bad_message', undefined],
    ['subscribe room not string', '{"type":"subscribe","room":1}', 'bad_message', undefined],
    ['publish without payload', '{"type":"publish","room":"r","id":"a"}', 'bad_message', 'a'],
    ['presence empty users', '{"type":"presence","users":[],"id":"a"}', 'bad_message', 'a'],
    ['presence users not array', '{"type":"presence","users":"a"}', 'bad_message', undefined],
    ['presence 101 users', JSON.stringify({ type: 'presence', users: Array.from({ length: 101 }, (_, i) => `u${i}`) }), 'bad_message', undefined],
    ['watch bad user', '{"type":"watch","users":["ok","no way"]}', 'bad_message', undefined],
    ['refresh without token', '{"type":"refresh","id":"a"}', 'bad_message', 'a'],
    ['refresh empty token', '{"type":"refresh","token":""}', 'bad_message', undefined],
  ];
  for (const [name, text, code, id] of invalid) {
    test(name, () => {
      const result = decodeClientFrame(text);
      assert.equal(result.ok, false);
      if (!result.ok) {
        assert.equal(result.error.code, code);
        assert.equal(result.error.id, id);
        assert.ok(result.error.message.length > 0);
      }
    });
  }
});

describe('the payload is relayed as the client wrote it', () => {
  test('spacing, big integers and number spelling are kept', () => {
    const text = '{ "type" : "offer" , "to":"u2", "payload" : { "n": 12345678901234567890, "f": 1.0 } }';
    const result = decodeClientFrame(text);
    assert.ok(result.ok);
    assert.equal('payloadJson' in result.frame && result.frame.payloadJson, '{ "n": 12345678901234567890, "f": 1.0 }');
  });

  test('a duplicated payload key: the last one, as JSON.parse reads it', () => {
    const result = decodeClientFrame('{"type":"message","payload":"first","to":"u2","payload":{"payload":"inner"}}');
    assert.ok(result.ok);
    assert.equal('payloadJson' in result.frame && result.frame.payloadJson, '{"payload":"inner"}');
  });

  test('a key written with escapes is the same key', () => {
    const result = decodeClientFrame('{"type":"message","to":"u2","p\\u0061yload":[1, 2]}');
    assert.ok(result.ok);
    assert.equal('payloadJson' in result.frame && result.frame.payloadJson, '[1, 2]');
  });
});

describe('decodeClientFrame never throws (property tests)', () => {
  const known = new Set<string>(CLIENT_FRAME_TYPES);
  const check = (text: string) => {
    const result = decodeClientFrame(text);
    if (result.ok) {
      assert.ok(known.has(result.frame.type));
      // The relayed payload text means what the client sent.
      if ('payloadJson' in result.frame && result.frame.payloadJson !== undefined)
        assert.deepEqual(JSON.parse(result.frame.payloadJson), (JSON.parse(text) as { payload: unknown }).payload);
    } else assert.ok(result.error.code === 'bad_message' || result.error.code === 'unknown_type');
  };

  test('random strings', () => {
    fc.assert(fc.property(fc.string({ maxLength: 300 }), check), { numRuns: 2000 });
  });

  test('random bytes decoded as UTF-8', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => check(Buffer.from(bytes).toString('utf8'))), { numRuns: 2000 });
  });

  test('random JSON values', () => {
    fc.assert(fc.property(fc.jsonValue(), (value) => check(JSON.stringify(value) ?? 'null')), { numRuns: 2000 });
  });

  test('random objects shaped like frames', () => {
    const frameLike = fc.record(
      {
        type: fc.oneof(fc.constantFrom(...CLIENT_FRAME_TYPES), fc.string(), fc.integer()),
        to: fc.oneof(fc.string(), fc.integer(), fc.constant(null)),
        device: fc.oneof(fc.string(), fc.constant(undefined)),
        id: fc.oneof(fc.string({ maxLength: 200 }), fc.integer(), fc.constant(undefined)),
        room: fc.oneof(fc.string(), fc.array(fc.string())),
        users: fc.oneof(fc.array(fc.string(), { maxLength: 120 }), fc.string(), fc.constant(null)),
        token: fc.oneof(fc.string(), fc.integer()),
        payload: fc.jsonValue(),
      },
      { requiredKeys: [] },
    );
    fc.assert(fc.property(frameLike, (value) => check(JSON.stringify(value))), { numRuns: 3000 });
  });
});

describe('names that are Object.prototype members are names like any other', () => {
  const names = ['__proto__', 'constructor', 'toString'];
  /** Own keys as JSON.parse reads them (it defines `__proto__` as a key, never as the prototype). */
  const ownKeys = (value: unknown) => Object.keys(value as object).sort();

  for (const name of names) {
    test(`decoded as user, device, room and listed user: ${name}`, () => {
      const cases: [unknown, unknown][] = [
        [{ type: 'offer', to: name, device: name, payload: 1 }, { type: 'offer', to: name, device: name, payloadJson: '1' }],
        [{ type: 'subscribe', room: name }, { type: 'subscribe', room: name }],
        [{ type: 'publish', room: name, payload: { [name]: 1 } }, { type: 'publish', room: name, payloadJson: `{"${name}":1}` }],
        [{ type: 'watch', users: [name, 'ann', name] }, { type: 'watch', users: [name, 'ann'] }],
      ];
      for (const [input, expected] of cases) {
        const result = decodeClientFrame(JSON.stringify(input));
        assert.ok(result.ok, JSON.stringify(result));
        assert.deepEqual(result.frame, expected);
      }
    });
  }

  test('a frame member named __proto__ is a member, not a prototype: publish still needs its own payload', () => {
    const result = decodeClientFrame('{"type":"publish","room":"r","__proto__":{"payload":1}}');
    assert.deepEqual(result, { ok: false, error: { code: 'bad_message', message: '"payload" is required' } });
  });

  test('presence replies keep every name, from a record without a prototype or from a Map', () => {
    const record = Object.create(null) as Record<string, PresenceStatus>;
    for (const name of names) record[name] = 'online';
    const map = new Map<string, PresenceStatus>(names.map((name) => [name, 'offline']));
    for (const states of [record, map]) {
      for (const text of [encode.presenceReply(states, 'q1'), encode.watching(states)]) {
        const frame = JSON.parse(text) as { users: unknown };
        assert.deepEqual(ownKeys(frame.users), [...names].sort(), text);
      }
    }
  });
});
