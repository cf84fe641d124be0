// SPEC §3.3: rooms with members, member_joined/left, publish, not_subscribed, forbidden, limits.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { eventually } from '../helpers/eventually';
import { startTestNode } from '../helpers/node';
import { TestClient } from '../helpers/ws-client';

const byUser = (a: { user: string }, b: { user: string }) => a.user.localeCompare(b.user);

describe('rooms', () => {
  test('subscribe lists every member; others see member_joined; publish reaches every other member', async (t) => {
    const node = await startTestNode(t);
    const a = await TestClient.welcomed(node.port, node.token({ sub: 'ann', device_id: 'a1' }));
    const b = await TestClient.welcomed(node.port, node.token({ sub: 'ben', device_id: 'b1' }));
    const c = await TestClient.welcomed(node.port, node.token({ sub: 'cat', device_id: 'c1' }));
    t.after(() => [a, b, c].forEach((x) => x.close()));

    assert.deepEqual(await a.request({ type: 'subscribe', room: 'lobby' }, 'subscribed'), {
      type: 'subscribed',
      room: 'lobby',
      members: [{ user: 'ann', device: 'a1' }],
      id: a.frames.at(-1)?.id,
    });
    const subB = await b.request({ type: 'subscribe', room: 'lobby' }, 'subscribed');
    assert.deepEqual((subB.members as { user: string }[]).sort(byUser), [
      { user: 'ann', device: 'a1' },
      { user: 'ben', device: 'b1' },
    ]);
    assert.deepEqual(await a.next('member_joined'), { type: 'member_joined', room: 'lobby', user: 'ben', device: 'b1' });

    const payload = { text: 'hello room', n: [1, 2] };
    assert.equal((await a.request({ type: 'publish', room: 'lobby', payload })).type, 'ack');
    assert.deepEqual(await b.next('message'), { type: 'message', room: 'lobby', from: 'ann', from_device: 'a1', payload });
    // The publisher does not get its own message; a non-member gets nothing.
    await a.request({ type: 'ping' });
    assert.equal(a.all('message').length, 0);
    assert.equal(c.all('message').length, 0);
  });

  test('unsubscribe and disconnect send member_left', async (t) => {
    const node = await startTestNode(t);
    const a = await TestClient.welcomed(node.port, node.token({ sub: 'ann', device_id: 'a1' }));
    const b = await TestClient.welcomed(node.port, node.token({ sub: 'ben', device_id: 'b1' }));
    t.after(() => [a, b].forEach((x) => x.close()));
    await a.request({ type: 'subscribe', room: 'r' }, 'subscribed');
    await b.request({ type: 'subscribe', room: 'r' }, 'subscribed');
    assert.deepEqual(await b.request({ type: 'unsubscribe', room: 'r' }, 'unsubscribed'), { type: 'unsubscribed', room: 'r', id: b.frames.at(-1)?.id });
    assert.deepEqual(await a.next('member_left'), { type: 'member_left', room: 'r', user: 'ben', device: 'b1' });
    // After leaving, publishing is refused.
    assert.equal((await b.request({ type: 'publish', room: 'r', payload: 1 })).code, 'not_subscribed');

    await b.request({ type: 'subscribe', room: 'r' }, 'subscribed');
    await a.next('member_joined');
    b.close();
    assert.deepEqual(await a.next('member_left'), { type: 'member_left', room: 'r', user: 'ben', device: 'b1' });
    const again = await a.request({ type: 'subscribe', room: 'r' }, 'subscribed');
    assert.deepEqual(again.members, [{ user: 'ann', device: 'a1' }]);
  });

  test('publish without subscribing → not_subscribed', async (t) => {
    const node = await startTestNode(t);
    const a = await TestClient.welcomed(node.port, node.token({ sub: 'ann' }));
    t.after(() => a.close());
    const reply = await a.request({ type: 'publish', room: 'elsewhere', payload: 'x' });
    assert.equal(reply.type, 'error');
    assert.equal(reply.code, 'not_subscribed');
  });

  test("rooms outside the token's patterns → forbidden; inside → allowed", async (t) => {
    const node = await startTestNode(t);
    const a = await TestClient.welcomed(node.port, node.token({ sub: 'ann', rooms: ['team-*', 'lobby'] }));
    t.after(() => a.close());
    for (const room of ['team-1', 'team-', 'lobby']) assert.equal((await a.request({ type: 'subscribe', room })).type, 'subscribed', room);
    for (const room of ['lobby2', 'team', 'other']) assert.equal((await a.request({ type: 'subscribe', room })).code, 'forbidden', room);
  });

  test('MAX_ROOMS_PER_CONNECTION: one more → limit_exceeded; re-subscribing a joined room is fine', async (t) => {
    const node = await startTestNode(t, { MAX_ROOMS_PER_CONNECTION: '3' });
    const a = await TestClient.welcomed(node.port, node.token({ sub: 'ann' }));
    t.after(() => a.close());
    for (const room of ['r1', 'r2', 'r3']) assert.equal((await a.request({ type: 'subscribe', room })).type, 'subscribed');
    assert.equal((await a.request({ type: 'subscribe', room: 'r4' })).code, 'limit_exceeded');
    assert.equal((await a.request({ type: 'subscribe', room: 'r2' })).type, 'subscribed');
    await a.request({ type: 'unsubscribe', room: 'r1' }, 'unsubscribed');
    assert.equal((await a.request({ type: 'subscribe', room: 'r4' })).type, 'subscribed');
  });

  test('a room message is encoded once and reaches 50 members exactly once each', async (t) => {
    const node = await startTestNode(t);
    const members = await Promise.all(Array.from({ length: 50 }, (_, i) => TestClient.welcomed(node.port, node.token({ sub: `m${i}` }))));
    t.after(() => members.forEach((m) => m.close()));
    for (const m of members) await m.request({ type: 'subscribe', room: 'big' }, 'subscribed');
    const [first] = members;
    first?.send({ type: 'publish', room: 'big', payload: 'fan-out' });
    await eventually(() => {
      for (const m of members.slice(1)) assert.equal(m.all('message').length, 1);
    });
    assert.equal(first?.all('message').length, 0);
  });
});
