// The order a session sends what it held while its node's standing was in
// question, and what a reclaim handed back (session/held-frames.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { keptFrame } from '../../src/resume/kept-frames';
import { HeldFrames } from '../../src/session/held-frames';

const kept = (id: string | undefined, frame: string, seq: number) => ({ seq, data: keptFrame(id, frame) });

test('kept while nothing reached the node goes first; what also waited in its sockets keeps its arrival place', () => {
  const held = new HeldFrames();
  held.hold('room 1', 'message', 'n.1');
  held.hold('direct 2', 'offer', 'n.2');
  held.hold('presence', 'presence', undefined);
  held.hold('room 3', 'message', 'n.3');
  // Kept: an older message from the outage, and the two room messages that also arrived.
  assert.equal(held.reclaim([kept('m.9', 'older', 1), kept('n.1', 'room 1', 2), kept('n.3', 'room 3', 3)]), 3);
  assert.deepEqual(
    [...held.drain('')].map(([frame, type]) => [frame, type]),
    [
      ['older', ''],
      ['room 1', 'message'],
      ['direct 2', 'offer'],
      ['presence', 'presence'],
      ['room 3', 'message'],
    ],
  );
});

test('a message kept twice (by the sender and by the session going away) is reclaimed once; one kept without an id is always sent', () => {
  const held = new HeldFrames();
  assert.equal(held.reclaim([kept('m.1', 'a', 1), kept('m.1', 'a', 2), kept(undefined, 'unsent', 3)]), 2);
  assert.equal(held.reclaim([kept('m.1', 'a', 4)]), 0, 'nor again by a later reclaim');
  assert.deepEqual(
    [...held.drain('replayed')].map(([frame, type, id]) => [frame, type, id]),
    [
      ['a', 'replayed', 'm.1'],
      ['unsent', 'replayed', undefined],
    ],
  );
});
