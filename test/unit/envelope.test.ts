import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeEnvelope, encodeEnvelope, SERVER_SENDER, type Envelope } from '../../src/protocol/envelope';
import { SERVER_FRAME_TYPES } from '../../src/protocol/server-frames';

/** Plain objects, as the codec builds them (fast-check's records have a null prototype by default). */
const record = <T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> => fc.record(model, { noNullPrototype: true });
const word = fc.stringMatching(/^[A-Za-z0-9_.:@-]{1,128}$/);
const session = fc.stringMatching(/^[A-Za-z0-9_-]{16,22}$/);
const messageId = fc.tuple(word, fc.nat()).map(([node, n]) => `${node}.${n.toString(36)}`);

/** Every kind of envelope, server-originated room traffic included (issue 12: it used to carry an empty sender). */
const envelope: fc.Arbitrary<Envelope> = fc.oneof(
  record({ k: fc.constant('dm' as const), o: word, s: session, t: fc.constantFrom('offer', 'answer', 'candidate', 'bye', 'message'), m: messageId }),
  record({ k: fc.constant('room' as const), o: word, s: fc.oneof(session, fc.constant(SERVER_SENDER)), t: fc.constantFrom(...SERVER_FRAME_TYPES), m: messageId }),
  record({ k: fc.constant('event' as const), o: word, m: messageId }),
  record({ k: fc.constant('pres' as const), o: word, st: fc.constantFrom('online' as const, 'offline' as const) }),
  record({ k: fc.constant('kick' as const), o: word, s: session }),
);

test('every kind of envelope round-trips and keeps the frame byte for byte', () => {
  fc.assert(
    fc.property(envelope, fc.string({ unit: 'binary' }), (header, frame) => {
      assert.deepEqual(decodeEnvelope(encodeEnvelope(header, frame)), { header, frame });
    }),
    { numRuns: 2000 },
  );
  const frame = '{"type":"offer","payload":"line1\\nline2 \u00e9"}\n{"second":"line"}';
  const serverSpeaks: Envelope = { k: 'room', o: 'n1', s: SERVER_SENDER, t: 'member_left', m: 'n1.a' };
  assert.deepEqual(decodeEnvelope(encodeEnvelope(serverSpeaks, frame)), { header: serverSpeaks, frame });
});

test('malformed envelopes are rejected, never thrown', () => {
  for (const text of [
    '',
    'no newline',
    '{bad}\n{}',
    '[]\n',
    'dm n\n',
    'dm n s\n',
    'dm n s t\n',
    'dm n s t m extra\n',
    'room n  member_left\n',
    'zz n\n',
    'kick n\n',
    'event\n',
    'event n\n',
    'pres n\n',
    'pres n away\n',
    'pres  n online\n',
    'event n \n',
    ' event n\n',
    'null\n',
  ])
    assert.equal(decodeEnvelope(text), undefined, text);
  fc.assert(fc.property(fc.string(), (s) => void decodeEnvelope(s)));
});
