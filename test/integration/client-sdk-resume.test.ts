// The client SDK's resume (SPEC §3.9) against a real node: a socket lost
// without a close (terminated under the client: 1006) is followed by a
// reconnect with `?resume=`; messages sent meanwhile are acked `queued` and
// replayed after the `resumed: true` welcome, and the room comes back without
// a rejoin. close() then connect() starts a new session.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import WebSocket from 'ws';
import { SwitchboardClient } from '../../src/client/index';
import type { ClientEvents } from '../../src/client/events';
import type { WebSocketConstructor } from '../../src/client/platform';
import { eventually } from '../helpers/eventually';
import { startTestNode, type TestNode } from '../helpers/node';


/** The `ws` class, keeping its instances so that a test can cut one without a close handshake. */
function cuttableWebSocket(): { WebSocket: WebSocketConstructor; cutLast(): void } {
  const sockets: WebSocket[] = [];
  class Recorded extends WebSocket {
    constructor(url: string) {
      super(url);
      sockets.push(this);
    }
  }
  return { WebSocket: Recorded, cutLast: () => sockets.at(-1)?.terminate() };
}

function sdk(t: TestContext, node: TestNode, claims: Record<string, unknown>, WebSocketClass: WebSocketConstructor = WebSocket) {
  const client = new SwitchboardClient({
    url: `ws://127.0.0.1:${node.port}/ws`,
    token: () => Promise.resolve(node.token(claims)),
    WebSocket: WebSocketClass,
    // The first reconnect waits 300-600 ms: time to send to the away client.
    backoff: { initialMs: 600, maxMs: 600, factor: 1, jitter: 0.5 },
  });
  const events: { name: keyof ClientEvents; value: unknown }[] = [];
  for (const name of ['connected', 'resume_failed', 'disconnected', 'signal', 'joined', 'room_message', 'error'] as const) client.on(name, (value) => events.push({ name, value }));
  t.after(() => client.close());
  return { client, seen: <K extends keyof ClientEvents>(name: K) => events.filter((e) => e.name === name).map((e) => e.value as ClientEvents[K]) };
}

test('a lost socket resumes: queued acks, the missed signal and room message replayed, no rejoin', async (t) => {
  const node = await startTestNode(t);
  const cuttable = cuttableWebSocket();
  const alice = sdk(t, node, { sub: 'alice', device_id: 'a1' }, cuttable.WebSocket);
  const bob = sdk(t, node, { sub: 'bob', device_id: 'b1' });
  const first = await alice.client.connect();
  await bob.client.connect();
  await alice.client.join('lobby');
  await bob.client.join('lobby');

  cuttable.cutLast();
  await eventually(() => assert.equal(alice.client.state, 'reconnecting'));
  assert.equal(alice.client.session, first.session, 'kept for the resume');
  assert.equal((await bob.client.send('alice', 'message', 'while away')).queued, true, 'kept for the away session');
  await bob.client.publish('lobby', 'room while away');

  await eventually(() => assert.equal(alice.client.state, 'open'), 5000);
  assert.equal(alice.client.resumed, true);
  assert.equal(alice.client.session, first.session);
  await eventually(() => assert.deepEqual(alice.seen('signal').map((s) => s.payload), ['while away']));
  await eventually(() => assert.deepEqual(alice.seen('room_message').map((m) => m.payload), ['room while away']));
  assert.deepEqual(alice.seen('resume_failed'), []);
  assert.equal(alice.seen('joined').filter((j) => j.rejoined).length, 0, 'the server restored the room: no rejoin');
  // And the room still works both ways on the resumed session.
  await alice.client.publish('lobby', 'back');
  await eventually(() => assert.deepEqual(bob.seen('room_message').map((m) => m.payload), ['back']));
  assert.deepEqual(alice.seen('error'), []);
});

test('close() ends the session: connect() again starts a new one, without resume_failed', async (t) => {
  const node = await startTestNode(t);
  const alice = sdk(t, node, { sub: 'alice', device_id: 'a1' });
  const first = await alice.client.connect();
  alice.client.close();
  const second = await alice.client.connect();
  assert.notEqual(second.session, first.session);
  assert.equal(second.resumed, false);
  assert.deepEqual(alice.seen('resume_failed'), []);
  const bob = sdk(t, node, { sub: 'bob', device_id: 'b1' });
  await bob.client.connect();
  alice.client.close();
  // A session closed with 1000 keeps nothing: no queued ack for it.
  await eventually(() => assert.rejects(bob.client.send('alice', 'message', 'gone'), { code: 'peer_offline' }));
});
