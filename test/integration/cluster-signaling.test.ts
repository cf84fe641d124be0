// Issue 3: three nodes on one Redis behave, for every client, like one node.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startCluster } from '../helpers/cluster';
import { eventually } from '../helpers/eventually';
import { http } from '../helpers/http';
import { TestClient } from '../helpers/ws-client';

describe('cluster: signaling, rooms, presence across nodes', () => {
  test('direct messages cross nodes with acks, device targeting, peer_offline and order over 1,000 messages', async (t) => {
    const { nodes } = await startCluster(t, 3, { RATE_LIMIT_POINTS: '100000' });
    const [n1, n2, n3] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
    const alice = await TestClient.welcomed(n1.port, n1.token({ sub: 'alice', device_id: 'a1' }));
    const bobPhone = await TestClient.welcomed(n2.port, n2.token({ sub: 'bob', device_id: 'phone' }));
    const bobLaptop = await TestClient.welcomed(n3.port, n3.token({ sub: 'bob', device_id: 'laptop' }));
    t.after(() => [alice, bobPhone, bobLaptop].forEach((c) => c.close()));
    assert.notEqual(alice.welcome.node, bobPhone.welcome.node);

    const payload = { sdp: 'v=0', list: [1, 'é', null] };
    assert.equal((await alice.request({ type: 'offer', to: 'bob', payload })).type, 'ack');
    for (const bob of [bobPhone, bobLaptop]) assert.deepEqual(await bob.next('offer'), { type: 'offer', from: 'alice', from_device: 'a1', payload });

    assert.equal((await alice.request({ type: 'answer', to: 'bob', device: 'laptop', payload: 1 })).type, 'ack');
    await bobLaptop.next('answer');
    assert.equal((await alice.request({ type: 'answer', to: 'bob', device: 'tablet', payload: 1 })).code, 'peer_offline');
    assert.equal((await alice.request({ type: 'answer', to: 'carol', payload: 1 })).code, 'peer_offline');
    // Replies cross back the other way.
    assert.equal((await bobPhone.request({ type: 'answer', to: 'alice', payload: 'back' })).type, 'ack');
    assert.equal((await alice.next('answer')).payload, 'back');

    for (let i = 0; i < 1000; i++) alice.send({ type: 'candidate', to: 'bob', id: `c${i}`, payload: i });
    await eventually(() => assert.equal(alice.all('ack').filter((a) => String(a.id).startsWith('c')).length, 1000), 20_000);
    for (const bob of [bobPhone, bobLaptop]) {
      await bob.next('candidate', (f) => f.payload === 999, 20_000);
      assert.deepEqual(
        bob.all('candidate').map((f) => f.payload),
        Array.from({ length: 1000 }, (_, i) => i),
      );
    }
  });

  test('rooms: members, member_joined/left and one copy of each message per member on every node', async (t) => {
    const { nodes } = await startCluster(t, 3);
    const clients = await Promise.all(nodes.map((n, i) => TestClient.welcomed(n.port, n.token({ sub: `m${i}`, device_id: `d${i}` }))));
    t.after(() => clients.forEach((c) => c.close()));
    const [a, b, c] = clients as unknown as [TestClient, TestClient, TestClient];
    await a.request({ type: 'subscribe', room: 'conf' }, 'subscribed');
    await b.request({ type: 'subscribe', room: 'conf' }, 'subscribed');
    const joined = await c.request({ type: 'subscribe', room: 'conf' }, 'subscribed');
    assert.deepEqual(
      (joined.members as { user: string }[]).map((m) => m.user).sort(),
      ['m0', 'm1', 'm2'],
    );
    assert.deepEqual(await a.next('member_joined', (f) => f.user === 'm2'), { type: 'member_joined', room: 'conf', user: 'm2', device: 'd2' });
    await b.next('member_joined', (f) => f.user === 'm2');

    assert.equal((await a.request({ type: 'publish', room: 'conf', payload: 'hello all' })).type, 'ack');
    for (const member of [b, c]) assert.deepEqual(await member.next('message'), { type: 'message', room: 'conf', from: 'm0', from_device: 'd0', payload: 'hello all' });
    await b.request({ type: 'ping' });
    await c.request({ type: 'ping' });
    assert.equal(b.all('message').length, 1);
    assert.equal(c.all('message').length, 1);
    assert.equal(a.all('message').length, 0);

    await c.request({ type: 'unsubscribe', room: 'conf' }, 'unsubscribed');
    for (const member of [a, b]) await member.next('member_left', (f) => f.user === 'm2');
    b.close();
    await a.next('member_left', (f) => f.user === 'm1');
    const again = await c.request({ type: 'subscribe', room: 'conf' }, 'subscribed');
    assert.deepEqual((again.members as { user: string }[]).map((m) => m.user).sort(), ['m0', 'm2']);
  });

  test('presence and watch see the whole cluster', async (t) => {
    const { nodes } = await startCluster(t, 3);
    const [n1, n2, n3] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
    const watcher = await TestClient.welcomed(n1.port, n1.token({ sub: 'watcher' }));
    t.after(() => watcher.close());
    assert.deepEqual((await watcher.request({ type: 'watch', users: ['bob'] }, 'watching')).users, { bob: 'offline' });
    const bob1 = await TestClient.welcomed(n2.port, n2.token({ sub: 'bob', device_id: 'b1' }));
    assert.deepEqual(await watcher.next('presence'), { type: 'presence', user: 'bob', status: 'online' });
    const bob2 = await TestClient.welcomed(n3.port, n3.token({ sub: 'bob', device_id: 'b2' }));
    assert.deepEqual((await watcher.request({ type: 'presence', users: ['bob', 'nobody'] }, 'presence')).users, { bob: 'online', nobody: 'offline' });
    bob1.close();
    // Still one device on n3: no change.
    await eventually(async () => assert.deepEqual((await http(n1.port, 'GET', '/v1/presence?users=bob', { headers: { authorization: `Bearer ${n1.token({ sub: 'ops', roles: ['admin'] })}` } })).json(), { users: { bob: 'online' } }));
    bob2.close();
    assert.deepEqual(await watcher.next('presence', (f) => f.status !== undefined), { type: 'presence', user: 'bob', status: 'offline' });
    assert.equal(watcher.all('presence').filter((f) => f.status !== undefined).length, 2);
  });

  test('takeover across nodes: the newer connection wins, the older closes 4009', async (t) => {
    const { nodes } = await startCluster(t, 2);
    const [n1, n2] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    const older = await TestClient.welcomed(n1.port, n1.token({ sub: 'ann', device_id: 'phone' }));
    const newer = await TestClient.welcomed(n2.port, n2.token({ sub: 'ann', device_id: 'phone' }));
    t.after(() => [older, newer].forEach((c) => c.close()));
    assert.deepEqual(await older.waitClosed(), { code: 4009, reason: 'replaced' });
    const ben = await TestClient.welcomed(n1.port, n1.token({ sub: 'ben' }));
    t.after(() => ben.close());
    assert.equal((await ben.request({ type: 'offer', to: 'ann', device: 'phone', payload: 'x' })).type, 'ack');
    await newer.next('offer');
    assert.deepEqual((await ben.request({ type: 'presence', users: ['ann'] })).users, { ann: 'online' });
  });

  test('POST /v1/publish and GET /v1/presence on any node reach the whole cluster', async (t) => {
    const { nodes } = await startCluster(t, 3);
    const [n1, n2, n3] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
    const ann = await TestClient.welcomed(n2.port, n2.token({ sub: 'ann', device_id: 'a' }));
    const ben = await TestClient.welcomed(n3.port, n3.token({ sub: 'ben', device_id: 'b' }));
    t.after(() => [ann, ben].forEach((c) => c.close()));
    await ben.request({ type: 'subscribe', room: 'news' }, 'subscribed');
    const admin = { authorization: `Bearer ${n1.token({ sub: 'ops', roles: ['admin'] })}`, 'content-type': 'application/json' };
    const send = async (body: unknown) => (await http(n1.port, 'POST', '/v1/publish', { headers: admin, body: JSON.stringify(body) })).status;
    assert.equal(await send({ to: 'ann', event: 'call-initiated', payload: { from: 'x' } }), 202);
    assert.deepEqual(await ann.next('event'), { type: 'event', event: 'call-initiated', payload: { from: 'x' } });
    assert.equal(await send({ room: 'news', event: 'headline', payload: 1 }), 202);
    assert.equal((await ben.next('event')).event, 'headline');
    assert.equal(await send({ broadcast: true, event: 'maintenance', payload: null }), 202);
    for (const c of [ann, ben]) await c.next('event', (f) => f.event === 'maintenance');
    const presence = await http(n1.port, 'GET', '/v1/presence?users=ann,ben,cat', { headers: admin });
    assert.deepEqual(presence.json(), { users: { ann: 'online', ben: 'online', cat: 'offline' } });
  });
});
