// The cross-node checks every multi-node topology passes (nodes on one Redis,
// on a Redis Cluster, behind Sentinel), written once: direct signaling, rooms,
// presence, takeover and /health. Each check takes the running nodes (two or
// more), places its clients on them and closes them in t.after; a test file
// starts its topology, calls these and adds only what is specific to it.
//
// No check waits for a peer to become reachable: a node sends `welcome` only
// once the connection is registered cluster-wide (ClientSession.open), so a
// client holding its welcome can be reached, and is seen online, from any node.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { eventually } from './eventually';
import { http } from './http';
import type { TestNode } from './node';
import { TestClient, type Frame } from './ws-client';

type Nodes = readonly TestNode[];

function twoOrMore(nodes: Nodes): [TestNode, TestNode, ...TestNode[]] {
  const [first, second, ...rest] = nodes;
  assert.ok(first !== undefined && second !== undefined, `a cross-node check needs two nodes or more, got ${nodes.length}`);
  return [first, second, ...rest];
}

const adminHeader = (node: TestNode) => ({ authorization: `Bearer ${node.token({ sub: 'ops', roles: ['admin'] })}` });

/** How many candidates each ordered stream carries. */
const STREAM = 1000;
const inOrder = Array.from({ length: STREAM }, (_, i) => i);

/**
 * Sends STREAM candidates from `from` to `target` (ids `<tag><i>`, payloads 0…STREAM-1): every one
 * is acked, none fails, and each receiver gets the last of them.
 */
async function stream(from: TestClient, target: { to: string; device?: string }, tag: string, receivers: TestClient[]): Promise<void> {
  for (let i = 0; i < STREAM; i++) from.send({ type: 'candidate', ...target, id: `${tag}${i}`, payload: i });
  const ours = (f: Frame) => String(f.id).startsWith(tag);
  await eventually(() => assert.equal(from.all('ack').filter(ours).length, STREAM), 20_000);
  const failed = from.all('error').filter(ours);
  assert.equal(failed.length, 0, JSON.stringify(failed.slice(0, 3)));
  for (const receiver of receivers) await receiver.next('candidate', (f) => f.payload === STREAM - 1, 20_000);
}

/**
 * Direct signaling (SPEC §3.2) across nodes: acks, delivery to every device of a user, device
 * targeting, peer_offline, replies the other way, presence, and order over 1,000 messages both to a
 * user and to one device. Alice is on the first node, bob's phone on the second, his laptop on the
 * third (with two nodes, on alice's: one remote device, one local). The nodes need
 * RATE_LIMIT_POINTS high enough for 2,000 frames from one user.
 */
export async function checkDirectSignaling(t: TestContext, nodes: Nodes): Promise<void> {
  const [n1, n2, n3 = n1] = twoOrMore(nodes);
  const alice = await TestClient.welcomed(n1.port, n1.token({ sub: 'alice', device_id: 'a1' }));
  const bobPhone = await TestClient.welcomed(n2.port, n2.token({ sub: 'bob', device_id: 'phone' }));
  const bobLaptop = await TestClient.welcomed(n3.port, n3.token({ sub: 'bob', device_id: 'laptop' }));
  t.after(() => [alice, bobPhone, bobLaptop].forEach((c) => c.close()));
  assert.notEqual(alice.welcome.node, bobPhone.welcome.node);

  const payload = { sdp: 'v=0', list: [1, 'é', null] };
  assert.equal((await alice.request({ type: 'offer', to: 'bob', payload })).type, 'ack');
  for (const bob of [bobPhone, bobLaptop]) assert.deepEqual(await bob.next('offer'), { type: 'offer', from: 'alice', from_device: 'a1', payload });

  for (const [device, bob] of [['laptop', bobLaptop], ['phone', bobPhone]] as const) {
    assert.equal((await alice.request({ type: 'answer', to: 'bob', device, payload: device })).type, 'ack');
    assert.deepEqual(await bob.next('answer'), { type: 'answer', from: 'alice', from_device: 'a1', payload: device });
  }
  assert.equal((await alice.request({ type: 'answer', to: 'bob', device: 'tablet', payload: 1 })).code, 'peer_offline');
  assert.equal((await alice.request({ type: 'answer', to: 'carol', payload: 1 })).code, 'peer_offline');
  // Replies cross back the other way.
  assert.equal((await bobPhone.request({ type: 'answer', to: 'alice', payload: 'back' })).type, 'ack');
  assert.equal((await alice.next('answer')).payload, 'back');
  for (const [device, bob] of [['laptop', bobLaptop], ['phone', bobPhone]] as const)
    assert.deepEqual(bob.all('answer').map((f) => f.payload), [device], 'a device-targeted answer reached another device');

  // To the user: every device gets all of them, in order.
  await stream(alice, { to: 'bob' }, 'user', [bobPhone, bobLaptop]);
  for (const bob of [bobPhone, bobLaptop]) assert.deepEqual(bob.all('candidate').map((f) => f.payload), inOrder);
  // To one device: that device gets all of them, in order, and no other device any.
  await stream(alice, { to: 'bob', device: 'phone' }, 'device', [bobPhone]);
  assert.deepEqual(bobPhone.all('candidate').map((f) => f.payload), [...inOrder, ...inOrder]);
  assert.deepEqual(bobLaptop.all('candidate').map((f) => f.payload), inOrder, 'a device-targeted candidate reached another device');

  assert.deepEqual((await alice.request({ type: 'presence', users: ['bob', 'nobody'] }, 'presence')).users, { bob: 'online', nobody: 'offline' });
}

/**
 * Rooms across nodes: members, member_joined/left and one copy of each message per member. m0 is
 * on the first node, m1 on the second, m2 on the third (with two nodes, on the second: one room
 * message from the bus, two local members).
 */
export async function checkRooms(t: TestContext, nodes: Nodes): Promise<void> {
  const [n1, n2, n3 = n2] = twoOrMore(nodes);
  const member = (node: TestNode, i: number) => TestClient.welcomed(node.port, node.token({ sub: `m${i}`, device_id: `d${i}` }));
  const [a, b, c] = await Promise.all([member(n1, 0), member(n2, 1), member(n3, 2)]);
  t.after(() => [a, b, c].forEach((client) => client.close()));
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
  for (const receiver of [b, c]) assert.deepEqual(await receiver.next('message'), { type: 'message', room: 'conf', from: 'm0', from_device: 'd0', payload: 'hello all' });
  await b.request({ type: 'ping' });
  await c.request({ type: 'ping' });
  assert.equal(b.all('message').length, 1);
  assert.equal(c.all('message').length, 1);
  assert.equal(a.all('message').length, 0);

  await c.request({ type: 'unsubscribe', room: 'conf' }, 'unsubscribed');
  for (const remaining of [a, b]) await remaining.next('member_left', (f) => f.user === 'm2');
  b.close();
  await a.next('member_left', (f) => f.user === 'm1');
  const again = await c.request({ type: 'subscribe', room: 'conf' }, 'subscribed');
  assert.deepEqual((again.members as { user: string }[]).map((m) => m.user).sort(), ['m0', 'm2']);
}

/**
 * Presence and watch see the whole cluster: a watcher on the first node, bob's two devices on the
 * second and third (with two nodes, on the watcher's); one online and one offline announcement.
 */
export async function checkPresence(t: TestContext, nodes: Nodes): Promise<void> {
  const [n1, n2, n3 = n1] = twoOrMore(nodes);
  const watcher = await TestClient.welcomed(n1.port, n1.token({ sub: 'watcher' }));
  t.after(() => watcher.close());
  assert.deepEqual((await watcher.request({ type: 'watch', users: ['bob'] }, 'watching')).users, { bob: 'offline' });
  const bob1 = await TestClient.welcomed(n2.port, n2.token({ sub: 'bob', device_id: 'b1' }));
  t.after(() => bob1.close());
  assert.deepEqual(await watcher.next('presence'), { type: 'presence', user: 'bob', status: 'online' });
  const bob2 = await TestClient.welcomed(n3.port, n3.token({ sub: 'bob', device_id: 'b2' }));
  t.after(() => bob2.close());
  // Several users at once (on Redis Cluster: one EXISTS per user, each in its own slot).
  assert.deepEqual((await watcher.request({ type: 'presence', users: ['bob', 'nobody', 'watcher'] }, 'presence')).users, {
    bob: 'online',
    nobody: 'offline',
    watcher: 'online',
  });
  bob1.close();
  // Still one device on another node: no change.
  await eventually(async () =>
    assert.deepEqual((await http(n1.port, 'GET', '/v1/presence?users=bob,watcher,x', { headers: adminHeader(n1) })).json(), {
      users: { bob: 'online', watcher: 'online', x: 'offline' },
    }),
  );
  bob2.close();
  assert.deepEqual(await watcher.next('presence', (f) => f.status !== undefined), { type: 'presence', user: 'bob', status: 'offline' });
  assert.equal(watcher.all('presence').filter((f) => f.status !== undefined).length, 2);
}

/** Takeover across nodes: the newer connection of a device wins, the older closes 4009. */
export async function checkTakeover(t: TestContext, nodes: Nodes): Promise<void> {
  const [n1, n2] = twoOrMore(nodes);
  const older = await TestClient.welcomed(n1.port, n1.token({ sub: 'ann', device_id: 'phone' }));
  t.after(() => older.close());
  // Welcomed means registered: the other node sees it at once, so the next connection is the newer one.
  assert.deepEqual((await http(n2.port, 'GET', '/v1/presence?users=ann', { headers: adminHeader(n2) })).json(), { users: { ann: 'online' } });
  const newer = await TestClient.welcomed(n2.port, n2.token({ sub: 'ann', device_id: 'phone' }));
  t.after(() => newer.close());
  assert.deepEqual(await older.waitClosed(), { code: 4009, reason: 'replaced' });
  const ben = await TestClient.welcomed(n1.port, n1.token({ sub: 'ben' }));
  t.after(() => ben.close());
  assert.equal((await ben.request({ type: 'offer', to: 'ann', device: 'phone', payload: 'x' })).type, 'ack');
  await newer.next('offer');
  assert.deepEqual((await ben.request({ type: 'presence', users: ['ann'] })).users, { ann: 'online' });
}

/** Every node reports itself healthy on the Redis bus (/health, no connections yet) and ready. */
export async function checkHealthyOnRedis(nodes: Nodes): Promise<void> {
  for (const node of nodes) {
    await eventually(async () => {
      const health = await http(node.port, 'GET', '/health');
      assert.equal(health.status, 200, health.body);
      assert.deepEqual(
        { ...(health.json() as Record<string, unknown>), uptime_s: 0 },
        { status: 'healthy', node: node.config.nodeId, version: node.config.version, uptime_s: 0, connections: 0, tunnels: 0, bus: 'redis', redis: 'up' },
      );
    });
    assert.equal((await http(node.port, 'GET', '/ready')).status, 200);
  }
}
