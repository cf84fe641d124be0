// The chaos ledger counts what it should: losses, duplicates, reorders,
// silent drops and in-doubt (cut) messages, each on its own.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Ledger } from './ledger';

test('a clean exchange: everything acked and delivered once, in order', () => {
  const l = new Ledger();
  for (let seq = 1; seq <= 3; seq++) {
    l.sent('a', 'b', seq, seq);
    l.answered('a', seq, 'ack', 1);
    l.delivered('a', 'b', seq);
  }
  const f = l.verdict();
  assert.equal(f.sent, 3);
  assert.equal(f.acked, 3);
  assert.equal(f.delivered, 3);
  assert.deepEqual([f.lost, f.duplicated, f.reordered, f.unanswered, f.cut], [0, 0, 0, 0, 0]);
  assert.deepEqual(l.outstanding(), { unanswered: 0, undelivered: 0 });
});

test('losses, duplicates, reorders, errors, silent drops and cut messages are told apart', () => {
  const l = new Ledger();
  for (let seq = 1; seq <= 8; seq++) l.sent('a', 'b', seq, seq);
  l.answered('a', 1, 'ack', 1); // delivered twice
  l.answered('a', 2, 'queued', 1); // never delivered: lost (queued)
  l.answered('a', 3, 'ack', 1); // delivered after 4: reordered
  l.answered('a', 4, 'ack', 1);
  l.answered('a', 5, 'error:unavailable', 1); // delivered all the same
  l.answered('a', 6, 'error:peer_offline', 1);
  // 7: no answer, connection stayed up: a silent drop. 8: no answer, connection closed: cut, delivered.
  l.cutOff('a', [8], 8);
  l.delivered('a', 'b', 1);
  l.delivered('a', 'b', 1);
  l.delivered('a', 'b', 4);
  l.delivered('a', 'b', 3);
  l.delivered('a', 'b', 5);
  l.delivered('a', 'b', 8);
  l.delivered('a', 'b', 99); // never sent
  l.answered('a', 1, 'ack', 1); // a second answer
  const f = l.verdict();
  assert.equal(f.sent, 8);
  assert.equal(f.acked, 3);
  assert.equal(f.queued, 1);
  assert.equal(f.delivered, 5);
  assert.equal(f.duplicated, 1);
  assert.equal(f.reordered, 1);
  assert.equal(f.lost, 1);
  assert.equal(f.lostQueued, 1);
  assert.equal(f.unavailable, 1);
  assert.equal(f.peer_offline, 1);
  assert.equal(f.errorButDelivered, 1);
  assert.equal(f.unanswered, 1);
  assert.equal(f.cut, 1);
  assert.equal(f.cutDelivered, 1);
  assert.equal(f.strayDeliveries, 1);
  assert.equal(f.strayAnswers, 1);
  assert.deepEqual(l.sampleLost(), ['a/2→b (queued)']);
  assert.deepEqual(l.outstanding(), { unanswered: 1, undelivered: 1 });
});

test('order is per (sender, recipient) pair', () => {
  const l = new Ledger();
  l.sent('a', 'b', 1, 0);
  l.sent('c', 'b', 1, 0);
  l.sent('a', 'b', 2, 0);
  l.delivered('a', 'b', 2);
  l.delivered('c', 'b', 1);
  l.delivered('a', 'b', 1);
  assert.equal(l.verdict().reordered, 1);
});

test('a message left without an answer longer than the bound is a silent drop, even if its connection closes later', () => {
  const l = new Ledger(1000);
  l.sent('a', 'b', 1, 0);
  l.sent('a', 'b', 2, 1500);
  l.sent('a', 'b', 3, 1600);
  l.answered('a', 3, 'error:unavailable', 2700);
  l.cutOff('a', [1, 2], 2000);
  const f = l.verdict();
  assert.equal(f.unanswered, 1);
  assert.equal(f.cut, 1);
  assert.equal(f.answeredLate, 1);
  assert.equal(f.maxAnswerMs, 1100);
});
