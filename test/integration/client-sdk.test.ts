// The client SDK in Node (with the `ws` package as its WebSocket) against
// real nodes: signaling with acks and peer_offline, rooms and their member
// events, presence watches, the in-band token refresh, 4009 replacement, and
// a drain that moves the client to the other node of a cluster by itself.
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import WebSocket from 'ws';
import { SwitchboardClient, type ClientOptions } from '../../src/client/index';
import type { ClientEvents } from '../../src/client/events';
import { startCluster } from '../helpers/cluster';
import { eventually } from '../helpers/eventually';
import { startTestNode, type TestNode } from '../helpers/node';

interface Recording {
  client: SwitchboardClient;
  seen<K extends keyof ClientEvents>(name: K): ClientEvents[K][];
}

/** A client for `user` on `nodes` (their /ws URLs in order), every event recorded; closed in teardown. */
function sdk(t: TestContext, nodes: TestNode[], claims: Record<string, unknown>, options: Partial<ClientOptions> = {}): Recording {
  const node = nodes[0];
  assert.ok(node);
  const client = new SwitchboardClient({
    urls: nodes.map((n) => `ws://127.0.0.1:${n.port}/ws`),
    token: () => Promise.resolve(node.token(claims)),
    WebSocket,
    backoff: { initialMs: 50, maxMs: 500, factor: 2, jitter: 0.5 },
    ...options,
  });
  const events: { name: keyof ClientEvents; value: unknown }[] = [];
  const names: (keyof ClientEvents)[] = ['connected', 'disconnected', 'draining', 'closed', 'signal', 'joined', 'member_joined', 'member_left', 'room_message', 'presence', 'token_refreshed', 'error'];
  for (const name of names) client.on(name, (value) => events.push({ name, value }));
  t.after(() => client.close());
  return { client, seen: <K extends keyof ClientEvents>(name: K) => events.filter((e) => e.name === name).map((e) => e.value as ClientEvents[K]) };
}

describe('client SDK against a real node', () => {
  test('send: ack, the signal on the other side, peer_offline for a user not connected', async (t) => {
    const node = await startTestNode(t);
    const alice = sdk(t, [node], { sub: 'alice', device_id: 'laptop' });
    const bob = sdk(t, [node], { sub: 'bob', device_id: 'phone' });
    assert.equal((await alice.client.connect()).user, 'alice');
    assert.equal((await bob.client.connect()).device, 'phone');

    const result = await alice.client.send('bob', 'offer', { sdp: 'v=0' }, { device: 'phone' });
    assert.equal(result.queued, false);
    assert.match(result.id, /^m/);
    await eventually(() => assert.deepEqual(bob.seen('signal'), [{ type: 'offer', from: 'alice', fromDevice: 'laptop', payload: { sdp: 'v=0' } }]));

    await assert.rejects(alice.client.send('carol', 'offer', {}), { name: 'SwitchboardError', code: 'peer_offline' });
    await assert.rejects(alice.client.send('bob', 'offer', {}, { device: 'tablet' }), { code: 'peer_offline' }, 'that device is not connected');
    await assert.rejects(alice.client.send('bad user!', 'offer', {}), { code: 'bad_message' });
  });

  test('rooms: members on join, member_joined, room messages, member_left on leave and on close', async (t) => {
    const node = await startTestNode(t);
    const alice = sdk(t, [node], { sub: 'alice', device_id: 'a1' });
    const bob = sdk(t, [node], { sub: 'bob', device_id: 'b1' });
    await Promise.all([alice.client.connect(), bob.client.connect()]);

    assert.deepEqual(await alice.client.join('lobby'), [{ user: 'alice', device: 'a1' }]);
    const members = await bob.client.join('lobby');
    assert.deepEqual(members.map((m) => m.user).sort(), ['alice', 'bob']);
    await eventually(() => assert.deepEqual(alice.seen('member_joined'), [{ room: 'lobby', user: 'bob', device: 'b1' }]));

    await bob.client.publish('lobby', { text: 'hello room' });
    await eventually(() => assert.deepEqual(alice.seen('room_message'), [{ room: 'lobby', from: 'bob', fromDevice: 'b1', payload: { text: 'hello room' } }]));
    assert.deepEqual(bob.seen('room_message'), [], 'the publisher does not get its own message');
    await assert.rejects(alice.client.publish('elsewhere', 1), { code: 'not_subscribed' });

    await bob.client.leave('lobby');
    await eventually(() => assert.deepEqual(alice.seen('member_left'), [{ room: 'lobby', user: 'bob', device: 'b1' }]));
    await bob.client.join('lobby');
    bob.client.close();
    await eventually(() => assert.equal(alice.seen('member_left').length, 2));
  });

  test('presence: the watch answer, then online and offline as the user comes and goes', async (t) => {
    const node = await startTestNode(t);
    const alice = sdk(t, [node], { sub: 'alice' });
    await alice.client.connect();
    assert.deepEqual(await alice.client.watch(['bob']), { bob: 'offline' });
    assert.deepEqual(await alice.client.presence(['bob', 'alice']), { bob: 'offline', alice: 'online' });

    const bob = sdk(t, [node], { sub: 'bob' });
    await bob.client.connect();
    await eventually(() => assert.deepEqual(alice.seen('presence'), [{ user: 'bob', status: 'online' }]));
    bob.client.close();
    await eventually(() => assert.deepEqual(alice.seen('presence'), [{ user: 'bob', status: 'online' }, { user: 'bob', status: 'offline' }]));
    assert.equal(alice.client.presenceOf('bob'), 'offline');
  });

  test('in-band refresh: a short token is refreshed on the open connection before it expires', async (t) => {
    const node = await startTestNode(t);
    let issued = 0;
    const alice = sdk(t, [node], {}, {
      // 3 s tokens: refreshed half-way (the margin is larger than half their life).
      token: () => Promise.resolve(node.token({ sub: 'alice', device_id: 'a1', exp: Math.floor(Date.now() / 1000) + 3, n: ++issued })),
    });
    const welcome = await alice.client.connect();
    await eventually(() => assert.ok(alice.seen('token_refreshed').length >= 1), 10_000, 50);
    assert.ok(issued >= 2);
    assert.deepEqual(alice.seen('disconnected'), [], 'the same connection throughout');
    assert.equal(alice.client.welcome?.session, welcome.session);
    assert.deepEqual(alice.seen('error'), []);
  });

  test('4009: a newer connection of the same device replaces the client, which stops', async (t) => {
    const node = await startTestNode(t);
    const first = sdk(t, [node], { sub: 'alice', device_id: 'phone' });
    await first.client.connect();
    const second = sdk(t, [node], { sub: 'alice', device_id: 'phone' });
    await second.client.connect();
    await eventually(() => assert.deepEqual(first.seen('closed'), [{ code: 4009, reason: 'replaced' }]));
    assert.equal(first.client.state, 'closed');
    assert.deepEqual(first.seen('disconnected'), [{ code: 4009, reason: 'replaced', reconnectInMs: undefined }]);
    // Still connected, and not taken over in turn (a reconnect of the first would have done that).
    assert.equal((await second.client.presence(['alice'])).alice, 'online');
    assert.deepEqual(second.seen('disconnected'), []);
  });
});

test('client SDK in a cluster: a drained node hands the client to the other node, which restores its watch', async (t) => {
  const { nodes } = await startCluster(t, 2, { DRAIN_SPREAD_MS: '200' });
  const [leaving, staying] = nodes;
  assert.ok(leaving && staying);
  const alice = sdk(t, [leaving, staying], { sub: 'alice', device_id: 'a1' });
  const bob = sdk(t, [staying], { sub: 'bob', device_id: 'b1' });
  assert.equal((await alice.client.connect()).node, leaving.config.nodeId);
  await bob.client.connect();
  assert.deepEqual(await alice.client.watch(['bob']), { bob: 'online' });
  await alice.client.join('lobby');

  await leaving.shutdown();
  await eventually(() => assert.equal(alice.client.welcome?.node, staying.config.nodeId), 10_000);
  assert.equal(alice.seen('draining').length, 1);
  assert.equal(alice.seen('disconnected')[0]?.code, 1012);
  // The watch and the room came along — resumed by the server (SPEC §3.9), or rejoined by the client on a
  // new session: bob's presence is known and his room messages arrive.
  await eventually(() => assert.ok(alice.client.resumed || alice.seen('joined').filter((j) => j.rejoined).length === 1));
  assert.equal(alice.client.presenceOf('bob'), 'online');
  await bob.client.join('lobby');
  await bob.client.publish('lobby', 'after the move');
  await eventually(() => assert.deepEqual(alice.seen('room_message').map((m) => m.payload), ['after the move']));
  assert.equal((await bob.client.send('alice', 'message', 'still there?')).queued, false);
  await eventually(() => assert.deepEqual(alice.seen('signal').map((s) => s.payload), ['still there?']));
});
