// SPEC §3.5: ping/pong, token refresh, 4001 at expiry.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startTestNode } from '../helpers/node';
import { TestClient } from '../helpers/ws-client';

const now = () => Math.floor(Date.now() / 1000);

describe('keep-alive and tokens', () => {
  test('ping → pong with the server time', async (t) => {
    const node = await startTestNode(t);
    const c = await TestClient.welcomed(node.port, node.token({ sub: 'ann' }));
    t.after(() => c.close());
    const before = Date.now();
    const pong = await c.request({ type: 'ping' }, 'pong');
    assert.equal(pong.type, 'pong');
    assert.ok(typeof pong.ts === 'number' && pong.ts >= before - 1000 && pong.ts <= Date.now() + 1000);
    c.send({ type: 'ping' });
    assert.deepEqual(Object.keys(await c.next('pong', (f) => f.id === undefined)).sort(), ['ts', 'type']);
  });

  test('a token expiring without refresh closes the connection with 4001 token_expired', async (t) => {
    const node = await startTestNode(t);
    const c = await TestClient.welcomed(node.port, node.token({ sub: 'ann', exp: now() + 2 }));
    t.after(() => c.close());
    assert.deepEqual(await c.waitClosed(5000), { code: 4001, reason: 'token_expired' });
  });

  test('refresh with a valid token of the same user → refreshed, and the old expiry no longer applies', async (t) => {
    const node = await startTestNode(t);
    // Two devices with tokens of the same expiry: one refreshes, the other is the witness that
    // the old expiry has come (its 4001), so nothing waits a fixed time.
    const oldExp = now() + 2;
    const c = await TestClient.welcomed(node.port, node.token({ sub: 'ann', device_id: 'refreshed', exp: oldExp }));
    const witness = await TestClient.welcomed(node.port, node.token({ sub: 'ann', device_id: 'witness', exp: oldExp }));
    t.after(() => [c, witness].forEach((x) => x.close()));
    const exp = now() + 3600;
    const reply = await c.request({ type: 'refresh', token: node.token({ sub: 'ann', device_id: 'refreshed', exp }) }, 'refreshed');
    assert.equal(reply.type, 'refreshed');
    assert.equal(reply.exp, exp);
    assert.deepEqual(await witness.waitClosed(), { code: 4001, reason: 'token_expired' });
    assert.equal((await c.request({ type: 'ping' })).type, 'pong');
    assert.equal(c.closed, undefined);
  });

  test('refresh with another user, an expired or a garbage token → token_invalid, connection stays', async (t) => {
    const node = await startTestNode(t);
    const c = await TestClient.welcomed(node.port, node.token({ sub: 'ann' }));
    t.after(() => c.close());
    for (const token of [node.token({ sub: 'ben' }), node.token({ sub: 'ann', exp: now() - 10 }), 'garbage']) {
      const reply = await c.request({ type: 'refresh', token });
      assert.equal(reply.type, 'error');
      assert.equal(reply.code, 'token_invalid');
    }
    assert.equal((await c.request({ type: 'ping' })).type, 'pong');
  });
});
