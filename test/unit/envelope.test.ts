import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeEnvelope, encodeEnvelope, type Envelope } from '../../src/protocol/envelope';

test('envelopes round-trip and keep the frame byte for byte', () => {
  const headers: Envelope[] = [
    { k: 'dm', o: 'n1', s: 's1', t: 'offer' },
    { k: 'room', o: 'n1', s: 's1', t: 'member_joined' },
    { k: 'event', o: 'n2' },
    { k: 'pres', o: 'n3' },
    { k: 'kick', o: 'n3', s: 'old' },
  ];
  const frame = '{"type":"offer","payload":"line1\\nline2 \u00e9"}\n{"second":"line"}';
  for (const header of headers) {
    const decoded = decodeEnvelope(encodeEnvelope(header, frame));
    assert.deepEqual(decoded, { header, frame });
  }
});

test('malformed envelopes are rejected, never thrown', () => {
  for (const text of ['', 'no newline', '{bad}\n{}', '[]\n', 'dm n\n', 'dm n s\n', 'dm n s t extra\n', 'zz n\n', 'kick n\n', 'event\n', 'pres  n\n', 'event n \n', ' event n\n', 'null\n'])
    assert.equal(decodeEnvelope(text), undefined, text);
  fc.assert(fc.property(fc.string(), (s) => void decodeEnvelope(s)));
});
