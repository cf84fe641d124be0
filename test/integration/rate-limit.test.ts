// SPEC §3.7: per-user frame rate across all the user's devices; rate_limited
// with retry_after_ms; 4008 after RATE_LIMIT_STRIKES rejections in a window.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { eventually } from '../helpers/eventually';
import { startTestNode } from '../helpers/node';
import { TestClient } from '../helpers/ws-client';

describe('rate limits', () => {
  test('frames over RATE_LIMIT_POINTS get rate_limited with retry_after_ms and the id; the connection stays', async (t) => {
    const node = await startTestNode(t, { RATE_LIMIT_POINTS: '5', RATE_LIMIT_DURATION_S: '10', RATE_LIMIT_STRIKES: '50' });
    const c = await TestClient.welcomed(node.port, node.token({ sub: 'ann' }));
    t.after(() => c.close());
    for (let i = 0; i < 8; i++) c.send({ type: 'ping', id: `p${i}` });
    await eventually(() => assert.equal(c.all('pong').length + c.all('error').length, 8));
    assert.deepEqual(
      c.all('pong').map((f) => f.id),
      ['p0', 'p1', 'p2', 'p3', 'p4'],
    );
    const errors = c.all('error');
    assert.deepEqual(errors.map((f) => [f.code, f.id]), [
      ['rate_limited', 'p5'],
      ['rate_limited', 'p6'],
      ['rate_limited', 'p7'],
    ]);
    for (const e of errors) assert.ok(typeof e.retry_after_ms === 'number' && e.retry_after_ms > 0 && e.retry_after_ms <= 10_000);
    assert.equal(c.closed, undefined);
    const metrics = await (await fetch(`http://127.0.0.1:${node.port}/metrics`, { headers: { connection: 'close' } })).text();
    assert.match(metrics, /signaling_rate_limit_exceeded_total\{[^}]*\} 3/);
  });

  test("the budget is the user's, shared by all devices", async (t) => {
    const node = await startTestNode(t, { RATE_LIMIT_POINTS: '6', RATE_LIMIT_DURATION_S: '10' });
    const d1 = await TestClient.welcomed(node.port, node.token({ sub: 'ann', device_id: 'd1' }));
    const d2 = await TestClient.welcomed(node.port, node.token({ sub: 'ann', device_id: 'd2' }));
    const other = await TestClient.welcomed(node.port, node.token({ sub: 'ben' }));
    t.after(() => [d1, d2, other].forEach((c) => c.close()));
    for (let i = 0; i < 4; i++) d1.send({ type: 'ping' });
    await eventually(() => assert.equal(d1.all('pong').length, 4));
    for (let i = 0; i < 4; i++) d2.send({ type: 'ping' });
    await eventually(() => assert.equal(d2.all('pong').length + d2.all('error').length, 4));
    assert.equal(d2.all('pong').length, 2);
    assert.equal(d2.all('error').length, 2);
    // Another user is not affected.
    assert.equal((await other.request({ type: 'ping' })).type, 'pong');
  });

  test('a user who keeps flooding is closed with 4008 rate_limited', async (t) => {
    const node = await startTestNode(t, { RATE_LIMIT_POINTS: '3', RATE_LIMIT_DURATION_S: '10', RATE_LIMIT_STRIKES: '5' });
    const c = await TestClient.welcomed(node.port, node.token({ sub: 'ann' }));
    const bystander = await TestClient.welcomed(node.port, node.token({ sub: 'ben' }));
    t.after(() => [c, bystander].forEach((x) => x.close()));
    for (let i = 0; i < 100; i++) c.send({ type: 'ping' });
    assert.deepEqual(await c.waitClosed(), { code: 4008, reason: 'rate_limited' });
    // 3 allowed, then 5 strikes answered; the 6th strike closes.
    assert.equal(c.all('pong').length, 3);
    assert.equal(c.all('error').length, 5);
    assert.equal((await bystander.request({ type: 'ping' })).type, 'pong');
  });
});
