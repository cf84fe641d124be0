// Issue 3: three nodes on one Redis behave, for every client, like one node.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startCluster } from '../helpers/cluster';
import { checkDirectSignaling, checkPresence, checkRooms, checkTakeover } from '../helpers/cluster-checks';
import { http } from '../helpers/http';
import { TestClient } from '../helpers/ws-client';

describe('cluster: signaling, rooms, presence across nodes', () => {
  test('direct messages cross nodes with acks, device targeting, peer_offline and order over 1,000 messages', async (t) => {
    await checkDirectSignaling(t, (await startCluster(t, 3, { RATE_LIMIT_POINTS: '100000' })).nodes);
  });

  test('rooms: members, member_joined/left and one copy of each message per member on every node', async (t) => {
    await checkRooms(t, (await startCluster(t, 3)).nodes);
  });

  test('presence and watch see the whole cluster', async (t) => {
    await checkPresence(t, (await startCluster(t, 3)).nodes);
  });

  test('takeover across nodes: the newer connection wins, the older closes 4009', async (t) => {
    await checkTakeover(t, (await startCluster(t, 2)).nodes);
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
