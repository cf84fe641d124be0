// SPEC §3.4: presence queries, watch/unwatch and change notifications.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startTestNode } from '../helpers/node';
import { TestClient } from '../helpers/ws-client';

describe('presence', () => {
  test('query answers online/offline for each user', async (t) => {
    const node = await startTestNode(t);
    const a = await TestClient.welcomed(node.port, node.token({ sub: 'ann' }));
    const b = await TestClient.welcomed(node.port, node.token({ sub: 'ben' }));
    t.after(() => [a, b].forEach((x) => x.close()));
    const reply = await a.request({ type: 'presence', users: ['ben', 'zed', 'ann'] }, 'presence');
    assert.deepEqual(reply.users, { ben: 'online', zed: 'offline', ann: 'online' });
  });

  test('watch reports the current state, then changes from no device to one and back', async (t) => {
    const node = await startTestNode(t);
    const watcher = await TestClient.welcomed(node.port, node.token({ sub: 'ann' }));
    t.after(() => watcher.close());
    const watching = await watcher.request({ type: 'watch', users: ['ben'] }, 'watching');
    assert.deepEqual(watching.users, { ben: 'offline' });

    const ben1 = await TestClient.welcomed(node.port, node.token({ sub: 'ben', device_id: 'b1' }));
    assert.deepEqual(await watcher.next('presence'), { type: 'presence', user: 'ben', status: 'online' });
    // A second device is not a change; losing one of two is not either.
    const ben2 = await TestClient.welcomed(node.port, node.token({ sub: 'ben', device_id: 'b2' }));
    ben1.close();
    ben2.close();
    assert.deepEqual(await watcher.next('presence'), { type: 'presence', user: 'ben', status: 'offline' });
    assert.equal(watcher.all('presence').length, 2);
  });

  test('unwatch stops notifications', async (t) => {
    const node = await startTestNode(t);
    const watcher = await TestClient.welcomed(node.port, node.token({ sub: 'ann' }));
    t.after(() => watcher.close());
    await watcher.request({ type: 'watch', users: ['ben', 'cat'] }, 'watching');
    const unwatched = await watcher.request({ type: 'unwatch', users: ['ben'] }, 'unwatched');
    assert.deepEqual(unwatched.users, ['ben']);
    const ben = await TestClient.welcomed(node.port, node.token({ sub: 'ben' }));
    const cat = await TestClient.welcomed(node.port, node.token({ sub: 'cat' }));
    t.after(() => [ben, cat].forEach((x) => x.close()));
    assert.equal((await watcher.next('presence')).user, 'cat');
    assert.equal(watcher.all('presence').length, 1);
  });

  test('MAX_WATCHED_USERS: watching more → limit_exceeded', async (t) => {
    const node = await startTestNode(t, { MAX_WATCHED_USERS: '150' });
    const watcher = await TestClient.welcomed(node.port, node.token({ sub: 'ann' }));
    t.after(() => watcher.close());
    const hundred = Array.from({ length: 100 }, (_, i) => `u${i}`);
    assert.equal((await watcher.request({ type: 'watch', users: hundred })).type, 'watching');
    // Re-watching the same users does not count twice.
    assert.equal((await watcher.request({ type: 'watch', users: hundred })).type, 'watching');
    const more = Array.from({ length: 51 }, (_, i) => `v${i}`);
    assert.equal((await watcher.request({ type: 'watch', users: more })).code, 'limit_exceeded');
    assert.equal((await watcher.request({ type: 'watch', users: more.slice(0, 50) })).type, 'watching');
  });
});
