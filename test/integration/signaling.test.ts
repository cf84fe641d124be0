// SPEC §3.2: direct signaling between real WebSocket clients through a real node.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { eventually } from '../helpers/eventually';
import { startTestNode } from '../helpers/node';
import { TestClient } from '../helpers/ws-client';

describe('direct signaling', () => {
  for (const type of ['offer', 'answer', 'candidate', 'bye', 'message']) {
    test(`${type} reaches every device of the recipient with the same payload, and is acked`, async (t) => {
      const node = await startTestNode(t);
      const alice = await TestClient.welcomed(node.port, node.token({ sub: 'alice', device_id: 'a1' }));
      const bob1 = await TestClient.welcomed(node.port, node.token({ sub: 'bob', device_id: 'b1' }));
      const bob2 = await TestClient.welcomed(node.port, node.token({ sub: 'bob', device_id: 'b2' }));
      t.after(() => [alice, bob1, bob2].forEach((c) => c.close()));
      const payload = { sdp: 'v=0\r\no=- 1 2 IN IP4 0.0.0.0', nested: [1, 'two', null, { three: 3.5 }], unicode: 'é✓🎉' };
      const ack = await alice.request({ type, to: 'bob', payload }, 'ack');
      assert.deepEqual({ ...ack, id: undefined }, { type: 'ack', id: undefined });
      for (const bob of [bob1, bob2]) {
        const got = await bob.next(type);
        assert.deepEqual(got, { type, from: 'alice', from_device: 'a1', payload });
      }
    });
  }

  test('a device-addressed message reaches only that device', async (t) => {
    const node = await startTestNode(t);
    const alice = await TestClient.welcomed(node.port, node.token({ sub: 'alice', device_id: 'a1' }));
    const bob1 = await TestClient.welcomed(node.port, node.token({ sub: 'bob', device_id: 'b1' }));
    const bob2 = await TestClient.welcomed(node.port, node.token({ sub: 'bob', device_id: 'b2' }));
    t.after(() => [alice, bob1, bob2].forEach((c) => c.close()));
    assert.equal((await alice.request({ type: 'offer', to: 'bob', device: 'b2', payload: 'x' })).type, 'ack');
    await bob2.next('offer');
    // A marker sent afterwards to every bob device proves b1 got nothing in between (order is kept).
    await alice.request({ type: 'message', to: 'bob', payload: 'marker' });
    assert.equal((await bob1.next('message')).payload, 'marker');
    assert.equal(bob1.all('offer').length, 0);
  });

  test('peer_offline for an unknown user or device, with the id echoed', async (t) => {
    const node = await startTestNode(t);
    const alice = await TestClient.welcomed(node.port, node.token({ sub: 'alice' }));
    const bob = await TestClient.welcomed(node.port, node.token({ sub: 'bob', device_id: 'b1' }));
    t.after(() => [alice, bob].forEach((c) => c.close()));
    const noUser = await alice.request({ type: 'offer', to: 'nobody', payload: {} });
    assert.equal(noUser.type, 'error');
    assert.equal(noUser.code, 'peer_offline');
    const noDevice = await alice.request({ type: 'offer', to: 'bob', device: 'b9', payload: {} });
    assert.equal(noDevice.code, 'peer_offline');
  });

  test('no id, no ack; the message is still delivered', async (t) => {
    const node = await startTestNode(t);
    const alice = await TestClient.welcomed(node.port, node.token({ sub: 'alice' }));
    const bob = await TestClient.welcomed(node.port, node.token({ sub: 'bob' }));
    t.after(() => [alice, bob].forEach((c) => c.close()));
    alice.send({ type: 'candidate', to: 'bob', payload: { c: 1 } });
    alice.send({ type: 'candidate', to: 'nobody', payload: { c: 1 } });
    await bob.next('candidate');
    const pong = await alice.request({ type: 'ping' }, 'pong');
    assert.equal(pong.type, 'pong');
    assert.equal(alice.all('ack').length + alice.all('error').length, 0);
  });

  test("a message to one's own user reaches the other devices, never the sender", async (t) => {
    const node = await startTestNode(t);
    const phone = await TestClient.welcomed(node.port, node.token({ sub: 'alice', device_id: 'phone' }));
    const laptop = await TestClient.welcomed(node.port, node.token({ sub: 'alice', device_id: 'laptop' }));
    t.after(() => [phone, laptop].forEach((c) => c.close()));
    assert.equal((await phone.request({ type: 'message', to: 'alice', payload: 'sync' })).type, 'ack');
    assert.deepEqual(await laptop.next('message'), { type: 'message', from: 'alice', from_device: 'phone', payload: 'sync' });
    // Alone, the sender's own user counts as offline: no other device (the laptop said goodbye: nothing kept for it).
    await laptop.goodbye();
    await eventually(async () => assert.equal((await phone.request({ type: 'message', to: 'alice', payload: 'x' })).code, 'peer_offline'));
    assert.equal(phone.all('message').length, 0);
  });

  test('order is kept per (sender, recipient) pair over 1,000 messages', async (t) => {
    const node = await startTestNode(t, { RATE_LIMIT_POINTS: '100000' });
    const alice = await TestClient.welcomed(node.port, node.token({ sub: 'alice' }));
    const bob = await TestClient.welcomed(node.port, node.token({ sub: 'bob' }));
    t.after(() => [alice, bob].forEach((c) => c.close()));
    for (let i = 0; i < 1000; i++) alice.send({ type: 'candidate', to: 'bob', payload: i });
    await bob.next('candidate', (f) => f.payload === 999, 10_000);
    assert.deepEqual(
      bob.all('candidate').map((f) => f.payload),
      Array.from({ length: 1000 }, (_, i) => i),
    );
  });
});
