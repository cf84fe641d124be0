// SwitchboardClient's session resume (SPEC §3.9), on a fake WebSocket under
// mock timers: when a reconnect presents `?resume=<session>` and when not,
// what a `resumed: true` welcome spares (no rejoin, no rewatch) and what it
// still settles, and what a `resumed: false` one restores and reports.
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { settle, type FakeSocket } from '../helpers/fake-websocket';
import { connectedSdkClient, NO_HEARTBEAT, sdkClient } from '../helpers/sdk-client';

type Setup = Awaited<ReturnType<typeof connectedSdkClient>>;

/** Drops the current socket with `code` and lets the reconnect open the next one (backoff 100 ms, jitter 0). */
async function dropAndReconnect(t: TestContext, setup: Setup, code: number): Promise<FakeSocket> {
  const before = setup.server.sockets.length;
  setup.server.last().serverClose(code);
  t.mock.timers.tick(setup.seen('disconnected').at(-1)?.reconnectInMs ?? -1);
  await settle();
  assert.equal(setup.server.sockets.length, before + 1, `a reconnect after ${code}`);
  return setup.server.last();
}

/** A client in room r1 watching u2 (online), on session s1. */
async function joinedAndWatching(t: TestContext): Promise<Setup> {
  const setup = await connectedSdkClient(t);
  const joined = setup.client.join('r1');
  setup.socket.answer('subscribe', { type: 'subscribed', room: 'r1', members: [] });
  await joined;
  const watched = setup.client.watch(['u2']);
  setup.socket.answer('watch', { type: 'watching', users: { u2: 'online' } });
  await watched;
  return setup;
}

const kinds = (socket: FakeSocket) => socket.sent.map((f) => f.type);

describe('the resume parameter', () => {
  test('absent on the first connect; the welcome session is presented after an unrequested loss, then the new one', async (t) => {
    const setup = await connectedSdkClient(t);
    const { client, server } = setup;
    assert.equal(server.sockets[0]?.resume, null);
    assert.equal(client.session, 's1');
    assert.equal(client.resumed, false);
    const next = await dropAndReconnect(t, setup, 1006);
    assert.equal(next.resume, 's1');
    assert.equal(next.token, 'fixed-token', 'the token stays in the URL beside it');
    assert.equal(client.session, 's1', 'while reconnecting: the session to resume');
    next.welcome({ ...NO_HEARTBEAT, session: 's2', resumed: false, reason: 'expired' });
    assert.equal(client.session, 's2');
    const third = await dropAndReconnect(t, setup, 1006);
    assert.equal(third.resume, 's2', 'the last welcome’s session, not the first one');
  });

  test('kept across failed attempts: every reconnect presents it until a welcome answers', async (t) => {
    const setup = await connectedSdkClient(t);
    await dropAndReconnect(t, setup, 1006);
    const again = await dropAndReconnect(t, setup, 1006); // closed before any welcome
    assert.equal(again.resume, 's1');
  });

  for (const code of [1001, 1006, 1011, 1012, 4000, 4010]) {
    test(`presented after ${code}`, async (t) => {
      const setup = await connectedSdkClient(t);
      if (code === 1012) setup.socket.receive({ type: 'draining', reconnect_after_ms: 0 });
      assert.equal((await dropAndReconnect(t, setup, code)).resume, 's1');
    });
  }

  test('presented after 4001 token expired, with the provider’s new token', async (t) => {
    let n = 0;
    const setup = sdkClient(t, { token: () => Promise.resolve(`token-${++n}`) });
    void setup.client.connect().catch(() => undefined);
    await settle();
    setup.server.last().welcome(NO_HEARTBEAT);
    const next = await dropAndReconnect(t, { ...setup, socket: setup.server.last() }, 4001);
    assert.deepEqual([next.token, next.resume], ['token-2', 's1']);
  });

  test('not presented after 4008 rate-limit abuse nor after 1008 (a new session starts)', async (t) => {
    for (const code of [4008, 1008]) {
      let n = 0;
      const setup = sdkClient(t, { token: () => Promise.resolve(`token-${++n}`) });
      void setup.client.connect().catch(() => undefined);
      await settle();
      setup.server.last().welcome(NO_HEARTBEAT);
      const next = await dropAndReconnect(t, { ...setup, socket: setup.server.last() }, code);
      assert.equal(next.resume, null, `after ${code}`);
      assert.equal(setup.client.session, undefined);
      setup.client.close();
      t.mock.timers.reset();
    }
  });

  test('not presented after close() and connect(): close() ends the session with 1000', async (t) => {
    const setup = await connectedSdkClient(t);
    const { client, server, socket } = setup;
    client.close();
    assert.deepEqual(socket.closedByClient, { code: 1000, reason: 'client_closed' });
    assert.equal(client.session, undefined);
    void client.connect().catch(() => undefined);
    await settle();
    assert.equal(server.sockets.length, 2);
    assert.equal(server.last().resume, null);
  });

  test('not presented after close() while reconnecting', async (t) => {
    const setup = await connectedSdkClient(t);
    setup.socket.serverClose(1006);
    setup.client.close();
    void setup.client.connect().catch(() => undefined);
    await settle();
    assert.equal(setup.server.last().resume, null);
  });

  test('4009 replaced: the session is forgotten with the client', async (t) => {
    const setup = await connectedSdkClient(t);
    setup.socket.serverClose(4009, 'replaced');
    assert.equal(setup.client.session, undefined);
    void setup.client.connect().catch(() => undefined);
    await settle();
    assert.equal(setup.server.last().resume, null);
  });
});

describe('the answer to a resume', () => {
  test('resumed: true — rooms and watches are not asked for again; a replayed frame after the welcome is delivered', async (t) => {
    const setup = await joinedAndWatching(t);
    const next = await dropAndReconnect(t, setup, 1006);
    next.welcome({ ...NO_HEARTBEAT, session: 's1', resumed: true });
    next.receive({ type: 'message', room: 'r1', from: 'u3', from_device: 'd3', payload: 'missed' });
    assert.equal(setup.client.resumed, true);
    assert.equal(setup.client.welcome?.resumed, true);
    assert.deepEqual(kinds(next), ['presence'], 'no subscribe, no watch: only a status query for the watched users');
    assert.deepEqual(next.last('presence').users, ['u2']);
    assert.deepEqual(setup.seen('room_message'), [{ room: 'r1', from: 'u3', fromDevice: 'd3', payload: 'missed' }]);
    assert.deepEqual(setup.seen('resume_failed'), []);
    assert.equal(setup.seen('joined').length, 1, 'no rejoined event');
    // A change while away that the replay did not carry is reported once; one it carried is not reported twice.
    next.receive({ type: 'presence', user: 'u2', status: 'offline' }); // replayed push
    next.answer('presence', { type: 'presence', users: { u2: 'offline' } });
    await settle();
    assert.deepEqual(setup.seen('presence'), [{ user: 'u2', status: 'offline' }]);
  });

  test('resumed: false — rooms rejoined, users rewatched, resume_failed with the reason and the old session', async (t) => {
    const setup = await joinedAndWatching(t);
    const next = await dropAndReconnect(t, setup, 1012);
    next.welcome({ ...NO_HEARTBEAT, session: 's2', resumed: false, reason: 'overflow' });
    assert.equal(setup.client.resumed, false);
    assert.deepEqual(setup.seen('resume_failed'), [{ session: 's1', reason: 'overflow' }]);
    assert.deepEqual(kinds(next), ['subscribe', 'watch']);
    next.answer('subscribe', { type: 'subscribed', room: 'r1', members: [] });
    next.answer('watch', { type: 'watching', users: { u2: 'online' } });
    await settle();
    assert.deepEqual(setup.seen('joined').at(-1), { room: 'r1', members: [], rejoined: true });
  });

  test('a server that ignores resume (no resumed, no reason): resume_failed unavailable, and the client restores', async (t) => {
    const setup = await joinedAndWatching(t);
    const next = await dropAndReconnect(t, setup, 1006);
    next.welcome({ ...NO_HEARTBEAT, session: 's2', resumed: undefined }); // no member at all once serialised
    assert.deepEqual(setup.seen('resume_failed'), [{ session: 's1', reason: 'unavailable' }]);
    assert.deepEqual(kinds(next), ['subscribe', 'watch']);
  });

  test('no resume_failed on a first connect, which asked for nothing', async (t) => {
    const setup = await connectedSdkClient(t);
    assert.equal(setup.client.session, 's1');
    assert.deepEqual(setup.seen('resume_failed'), []);
  });

  test('resumed: true after a leave and an unwatch that were never confirmed: they are sent again', async (t) => {
    const setup = await joinedAndWatching(t);
    const { client, socket } = setup;
    const left = client.leave('r1');
    const unwatched = client.unwatch(['u2']);
    socket.serverClose(1006);
    await assert.rejects(left, { code: 'closed' });
    await assert.rejects(unwatched, { code: 'closed' });
    await assert.rejects(client.leave('r-while-away'), { code: 'not_connected' });
    t.mock.timers.tick(100);
    await settle();
    const next = setup.server.last();
    next.welcome({ ...NO_HEARTBEAT, resumed: true });
    assert.deepEqual(kinds(next), ['unsubscribe', 'unwatch'], 'only what the session may still hold against the client’s wish');
    assert.equal(next.last('unsubscribe').room, 'r1');
    assert.deepEqual(next.last('unwatch').users, ['u2']);
    next.answer('unsubscribe', { type: 'unsubscribed', room: 'r1' });
    next.answer('unwatch', { type: 'unwatched', users: ['u2'] });
    await settle();
    // Settled now: the next resume asks for nothing.
    const third = await dropAndReconnect(t, setup, 1006);
    third.welcome({ ...NO_HEARTBEAT, resumed: true });
    assert.deepEqual(kinds(third), []);
    assert.deepEqual(setup.seen('error'), []);
  });

  test('resumed: true after a join and a rejoin whose answers never came: joined (again) on the resumed session', async (t) => {
    const setup = await connectedSdkClient(t);
    const { client, socket } = setup;
    const r1 = client.join('r1');
    socket.answer('subscribe', { type: 'subscribed', room: 'r1', members: [] });
    await r1;
    const lost = client.join('r2'); // the app hears `closed`: maybe joined, maybe not
    lost.catch(() => undefined); // asserted below, after the drop
    // New session s2: the rejoin of r1 is sent, then the socket drops before its answer.
    const second = await dropAndReconnect(t, setup, 1006);
    await assert.rejects(lost, { code: 'closed' });
    second.welcome({ ...NO_HEARTBEAT, session: 's2', resumed: false, reason: 'expired' });
    assert.deepEqual(kinds(second), ['subscribe']);
    const third = await dropAndReconnect(t, setup, 1006);
    assert.equal(third.resume, 's2');
    third.welcome({ ...NO_HEARTBEAT, session: 's2', resumed: true });
    assert.deepEqual(third.sent.map((f) => [f.type, f.room]), [['subscribe', 'r1']], 'r1 rejoined; r2 belongs to the old session, gone with it');
  });

  test('resumed: true after a join whose answer never came: the room the app was told may not be joined is left', async (t) => {
    const setup = await connectedSdkClient(t);
    const lost = setup.client.join('r2');
    lost.catch(() => undefined); // asserted below, after the drop
    const next = await dropAndReconnect(t, setup, 1006);
    await assert.rejects(lost, { code: 'closed' });
    next.welcome({ ...NO_HEARTBEAT, resumed: true });
    assert.deepEqual(next.sent.map((f) => [f.type, f.room]), [['unsubscribe', 'r2']]);
  });

  test('a queued ack resolves send() with queued: true', async (t) => {
    const { client, socket } = await connectedSdkClient(t);
    const sent = client.send('u2', 'message', 'hi');
    socket.answer('message', { type: 'ack', queued: true });
    assert.deepEqual(await sent, { id: socket.last('message').id, queued: true });
  });
});
