// Resume (SPEC §3.9) with real nodes and real WebSocket clients: on one node
// (in-process bus and store), and across two nodes on one real redis-server —
// the session goes away on one node and comes back on the other, after a lost
// connection and after a drain.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startCluster } from '../helpers/cluster';
import { eventually } from '../helpers/eventually';
import { startTestNode, type TestNode } from '../helpers/node';
import { TestClient, type Frame } from '../helpers/ws-client';

/** Reconnects with `?resume=` and waits for the welcome. */
async function resume(node: TestNode, token: string, session: unknown): Promise<TestClient & { welcome: Frame }> {
  const client = await TestClient.connect(node.port, `token=${encodeURIComponent(token)}&resume=${encodeURIComponent(String(session))}`);
  return Object.assign(client, { welcome: await client.next('welcome') });
}

/** Waits until `user` is offline for `watcher` (its old connection has gone away completely). */
async function offline(watcher: TestClient, user: string): Promise<void> {
  await eventually(async () => assert.equal(((await watcher.request({ type: 'presence', users: [user] })).users as Record<string, string>)[user], 'offline'));
}

/** Payloads of the `message` frames received so far, in order. */
const payloads = (client: TestClient) => client.all('message').map((f) => f.payload);

describe('resume on one node', () => {
  test('a dropped session keeps what was sent to it (ack queued:true) and gets it back, in order, before anything newer', async (t) => {
    const node = await startTestNode(t);
    const aliceToken = node.token({ sub: 'alice', device_id: 'phone', rooms: ['*'] });
    const alice = await TestClient.welcomed(node.port, aliceToken);
    const bob = await TestClient.welcomed(node.port, node.token({ sub: 'bob', device_id: 'd1', rooms: ['*'] }));
    t.after(() => bob.close());
    assert.equal(alice.welcome.resumed, false);
    assert.equal((await alice.request({ type: 'subscribe', room: 'lobby' })).type, 'subscribed');
    assert.equal((await bob.request({ type: 'subscribe', room: 'lobby' })).type, 'subscribed');
    assert.equal((await alice.request({ type: 'watch', users: ['carol'] })).type, 'watching');

    alice.close(); // the network drops: no close frame
    await offline(bob, 'alice');
    assert.equal((await bob.request({ type: 'message', to: 'alice', payload: 'd1' })).queued, true);
    const queued = await bob.request({ type: 'message', to: 'alice', payload: 'd2' });
    assert.deepEqual([queued.type, queued.queued], ['ack', true]);
    assert.equal((await bob.request({ type: 'publish', room: 'lobby', payload: 'r1' })).type, 'ack');

    const back = await resume(node, aliceToken, alice.welcome.session);
    t.after(() => back.close());
    assert.equal(back.welcome.resumed, true);
    assert.equal(back.welcome.session, alice.welcome.session, 'the same session goes on');
    assert.equal(back.welcome.device, 'phone');
    await eventually(() => assert.deepEqual(payloads(back), ['d1', 'd2', 'r1']));
    // Back in the room and watching, without asking: room traffic and presence reach it again.
    assert.equal((await bob.request({ type: 'publish', room: 'lobby', payload: 'r2' })).type, 'ack');
    await eventually(() => assert.deepEqual(payloads(back), ['d1', 'd2', 'r1', 'r2']));
    const carol = await TestClient.welcomed(node.port, node.token({ sub: 'carol' }));
    t.after(() => carol.close());
    await back.next('presence', (f) => f.user === 'carol' && f.status === 'online');
    // Live again: a message is acked as delivered, not queued.
    const live = await bob.request({ type: 'message', to: 'alice', payload: 'live' });
    assert.deepEqual([live.type, live.queued], ['ack', undefined]);
  });

  test("someone else's session, an unknown one and one that said goodbye are refused, with the reason", async (t) => {
    const node = await startTestNode(t);
    const alice = await TestClient.welcomed(node.port, node.token({ sub: 'alice' }));
    alice.close();
    const mallory = await resume(node, node.token({ sub: 'mallory' }), alice.welcome.session);
    t.after(() => mallory.close());
    assert.deepEqual([mallory.welcome.resumed, mallory.welcome.reason], [false, 'forbidden']);
    assert.notEqual(mallory.welcome.session, alice.welcome.session, 'a refused resume starts a new session');

    const stranger = await resume(node, node.token({ sub: 'alice' }), 'no-such-session');
    t.after(() => stranger.close());
    assert.deepEqual([stranger.welcome.resumed, stranger.welcome.reason], [false, 'expired']);

    const done = await TestClient.welcomed(node.port, node.token({ sub: 'dave' }));
    await done.goodbye(); // 1000: the app is done with the session
    const bob = await TestClient.welcomed(node.port, node.token({ sub: 'bob' }));
    t.after(() => bob.close());
    await eventually(async () => assert.equal((await bob.request({ type: 'message', to: 'dave', payload: 'x' })).code, 'peer_offline'));
    const late = await resume(node, node.token({ sub: 'dave' }), done.welcome.session);
    t.after(() => late.close());
    assert.deepEqual([late.welcome.resumed, late.welcome.reason], [false, 'expired']);
  });

  test('a full buffer is never a silent gap: the sender hears peer_offline, the resume is refused with overflow', async (t) => {
    const node = await startTestNode(t, { RESUME_BUFFER: '2' });
    const token = node.token({ sub: 'alice' });
    const alice = await TestClient.welcomed(node.port, token);
    const bob = await TestClient.welcomed(node.port, node.token({ sub: 'bob' }));
    t.after(() => bob.close());
    alice.close();
    await offline(bob, 'alice');
    assert.equal((await bob.request({ type: 'message', to: 'alice', payload: 1 })).queued, true);
    assert.equal((await bob.request({ type: 'message', to: 'alice', payload: 2 })).queued, true);
    assert.equal((await bob.request({ type: 'message', to: 'alice', payload: 3 })).code, 'peer_offline');
    const back = await resume(node, token, alice.welcome.session);
    t.after(() => back.close());
    assert.deepEqual([back.welcome.resumed, back.welcome.reason], [false, 'overflow']);
    assert.equal(back.all('message').length, 0);
    const text = await (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text();
    assert.match(text, /signaling_resumes_total\{[^}]*result="overflow"[^}]*\} 1/);
    assert.match(text, /signaling_resume_kept_total\{[^}]*result="queued"[^}]*\} 2/);
  });

  test('RESUME_WINDOW_S=0 turns resume off: nothing is kept, and a resume is not attempted', async (t) => {
    const node = await startTestNode(t, { RESUME_WINDOW_S: '0' });
    const token = node.token({ sub: 'alice' });
    const alice = await TestClient.welcomed(node.port, token);
    const bob = await TestClient.welcomed(node.port, node.token({ sub: 'bob' }));
    t.after(() => bob.close());
    alice.close();
    await eventually(async () => assert.equal((await bob.request({ type: 'message', to: 'alice', payload: 1 })).code, 'peer_offline'));
    const again = await resume(node, token, alice.welcome.session);
    t.after(() => again.close());
    assert.equal(again.welcome.resumed, false);
  });
});

describe('resume across two nodes on Redis', () => {
  test('a session dropped on one node resumes on the other with everything sent meanwhile, direct and room, once each', async (t) => {
    const { nodes: [a, b] } = await startCluster(t, 2);
    const token = a!.token({ sub: 'alice', device_id: 'phone', rooms: ['*'] });
    const alice = await TestClient.welcomed(a!.port, token);
    const bob = await TestClient.welcomed(b!.port, b!.token({ sub: 'bob', rooms: ['*'] }));
    t.after(() => bob.close());
    await alice.request({ type: 'subscribe', room: 'lobby' });
    await bob.request({ type: 'subscribe', room: 'lobby' });

    alice.close();
    await offline(bob, 'alice');
    assert.equal((await bob.request({ type: 'message', to: 'alice', payload: 'd1' })).queued, true);
    for (let i = 2; i <= 50; i++) bob.send({ type: 'message', to: 'alice', payload: `d${i}` });
    assert.equal((await bob.request({ type: 'publish', room: 'lobby', payload: 'r1' })).type, 'ack');

    const back = await resume(b!, token, alice.welcome.session);
    t.after(() => back.close());
    assert.equal(back.welcome.resumed, true);
    const expected = [...Array.from({ length: 50 }, (_, i) => `d${i + 1}`), 'r1'];
    await eventually(() => assert.deepEqual(payloads(back), expected));
    // Nothing more arrives twice later on.
    assert.equal((await bob.request({ type: 'publish', room: 'lobby', payload: 'r2' })).type, 'ack');
    await eventually(() => assert.deepEqual(payloads(back), [...expected, 'r2']));
  });

  test('a draining node loses nothing: its clients resume on the other node with what was sent while they moved', async (t) => {
    const { nodes: [a, b] } = await startCluster(t, 2, { DRAIN_SPREAD_MS: '0' });
    const token = a!.token({ sub: 'alice' });
    const alice = await TestClient.welcomed(a!.port, token);
    const bob = await TestClient.welcomed(b!.port, b!.token({ sub: 'bob' }));
    t.after(() => bob.close());
    const sent: string[] = [];
    let sending = true;
    const sender = (async () => {
      for (let i = 0; sending && i < 2000; i++) {
        const reply = await bob.request({ type: 'message', to: 'alice', payload: `m${i}` });
        if (reply.type === 'ack') sent.push(`m${i}`);
      }
    })();
    await eventually(() => assert.ok(payloads(alice).length >= 20));
    const drained = a!.shutdown();
    // DRAIN_SPREAD_MS=0 closes every socket at once with 1001; both codes leave the session resumable.
    const closed = await alice.waitClosed();
    assert.ok([1001, 1012].includes(closed.code), String(closed.code));
    const back = await resume(b!, token, alice.welcome.session);
    t.after(() => back.close());
    assert.equal(back.welcome.resumed, true);
    await drained;
    await eventually(() => assert.ok(payloads(back).length >= 20, 'live again after the resume'));
    sending = false;
    await sender;
    // Every acknowledged message exactly once, in order, across the two connections.
    await eventually(() => assert.deepEqual([...payloads(alice), ...payloads(back)], sent));
  });
});
