// SwitchboardClient's requests and incoming frames, on a fake WebSocket under
// mock timers: how each promise is settled (ack, peer_offline, error,
// timeout, socket closed, not connected), what goes on the wire, which events
// the server's frames become, and what a reconnect restores.
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { SwitchboardError } from '../../src/client/errors';
import { settle } from '../helpers/fake-websocket';
import { connectedSdkClient, NO_HEARTBEAT, sdkClient } from '../helpers/sdk-client';

const connected = (t: TestContext) => connectedSdkClient(t);

describe('send() settles by the answer to its id', () => {
  test('ack resolves with the id; the frame on the wire is the signal with a fresh id', async (t) => {
    const { client, socket } = await connected(t);
    const sent = client.send('u2', 'offer', { sdp: 'v=0' }, { device: 'd2' });
    const frame = socket.last('offer');
    assert.deepEqual({ ...frame, id: undefined }, { type: 'offer', to: 'u2', device: 'd2', payload: { sdp: 'v=0' }, id: undefined });
    assert.match(String(frame.id), /^m[a-z0-9]+-\d+$/);
    socket.receive({ type: 'ack', id: frame.id });
    assert.deepEqual(await sent, { id: frame.id, queued: false });

    const queued = client.send('u2', 'bye');
    assert.equal('payload' in socket.last('bye'), false, 'no payload member when none was given');
    assert.equal('device' in socket.last('bye'), false);
    socket.answer('bye', { type: 'ack', queued: true });
    assert.equal((await queued).queued, true);
  });

  test('peer_offline and other errors reject with a SwitchboardError carrying code and id', async (t) => {
    const { client, socket } = await connected(t);
    const offline = client.send('nobody', 'offer', {});
    socket.answer('offer', { type: 'error', code: 'peer_offline', message: 'no device of "nobody" is connected' });
    await assert.rejects(offline, (error: unknown) => {
      assert.ok(error instanceof SwitchboardError);
      assert.equal(error.code, 'peer_offline');
      assert.equal(error.id, socket.last('offer').id);
      return true;
    });
    const limited = client.send('u2', 'message', 'hi');
    socket.answer('message', { type: 'error', code: 'rate_limited', message: 'slow down', retry_after_ms: 250 });
    await assert.rejects(limited, { code: 'rate_limited', retryAfterMs: 250 });
  });

  test('answers are matched by id, in any order', async (t) => {
    const { client, socket } = await connected(t);
    const first = client.send('u2', 'candidate', 1);
    const second = client.send('u2', 'candidate', 2);
    const [a, b] = socket.sent.filter((f) => f.type === 'candidate');
    socket.receive({ type: 'error', code: 'peer_offline', message: 'gone', id: b?.id });
    socket.receive({ type: 'ack', id: a?.id });
    assert.equal((await first).id, a?.id);
    await assert.rejects(second, { code: 'peer_offline' });
  });

  test('timeout: rejected after sendTimeoutMs; a late answer is ignored', async (t) => {
    const { client, socket, seen } = await connected(t);
    const sent = client.send('u2', 'offer', {});
    t.mock.timers.tick(1999);
    await settle();
    let settled = false;
    sent.then(() => (settled = true), () => (settled = true));
    await settle();
    assert.equal(settled, false, 'still waiting before the timeout');
    t.mock.timers.tick(1);
    await assert.rejects(sent, { code: 'timeout' });
    socket.answer('offer', { type: 'ack' });
    socket.answer('offer', { type: 'error', code: 'peer_offline', message: 'late' });
    // A late error for a request that timed out is reported as an event: nothing else would see it.
    assert.deepEqual(seen('error').map((e) => e.code), ['peer_offline']);
  });

  test('the socket closes before the answer: rejected with closed', async (t) => {
    const { client, socket } = await connected(t);
    const sent = client.send('u2', 'offer', {});
    const joined = client.join('r1');
    socket.serverClose(1012, 'draining');
    await assert.rejects(sent, { code: 'closed' });
    await assert.rejects(joined, { code: 'closed' });
  });

  test('not connected: rejected at once with not_connected, nothing sent', async (t) => {
    const { client, server } = sdkClient(t);
    await assert.rejects(client.send('u2', 'offer', {}), { code: 'not_connected' });
    void client.connect().catch(() => undefined);
    await settle();
    // Socket created, no welcome yet: still not connected.
    await assert.rejects(client.watch(['u2']), { code: 'not_connected' });
    assert.deepEqual(server.last().sent, []);
  });
});

describe('incoming frames become events', () => {
  test('signals, room messages, member events, server events, unsolicited errors, unreadable frames', async (t) => {
    const { socket, seen } = await connected(t);
    socket.receive({ type: 'offer', from: 'u2', from_device: 'd2', payload: { sdp: 'x' } });
    socket.receive({ type: 'bye', from: 'u2', from_device: 'd2' });
    socket.receive({ type: 'message', room: 'r1', from: 'u3', from_device: 'd3', payload: 'hello' });
    socket.receive({ type: 'member_joined', room: 'r1', user: 'u3', device: 'd3' });
    socket.receive({ type: 'member_left', room: 'r1', user: 'u3', device: 'd3' });
    socket.receive({ type: 'event', event: 'call-initiated', payload: { by: 'admin' } });
    socket.receive({ type: 'error', code: 'bad_message', message: 'nope' });
    socket.receive('not json');
    socket.receive({ type: 'offer', from: 42 });
    assert.deepEqual(seen('signal'), [
      { type: 'offer', from: 'u2', fromDevice: 'd2', payload: { sdp: 'x' } },
      { type: 'bye', from: 'u2', fromDevice: 'd2', payload: undefined },
    ]);
    assert.deepEqual(seen('room_message'), [{ room: 'r1', from: 'u3', fromDevice: 'd3', payload: 'hello' }]);
    assert.deepEqual(seen('member_joined'), [{ room: 'r1', user: 'u3', device: 'd3' }]);
    assert.deepEqual(seen('member_left'), [{ room: 'r1', user: 'u3', device: 'd3' }]);
    assert.deepEqual(seen('event'), [{ event: 'call-initiated', payload: { by: 'admin' } }]);
    assert.deepEqual(seen('error').map((e) => e.code), ['bad_message', 'bad_frame', 'bad_frame']);
  });

  test('a listener that throws does not stop the other listeners nor the client', async (t) => {
    const { client, socket, seen } = await connected(t);
    const thrown: unknown[] = [];
    t.mock.method(globalThis, 'queueMicrotask', (callback: () => void) => {
      try {
        callback();
      } catch (error) {
        thrown.push(error);
      }
    });
    client.on('signal', () => {
      throw new Error('app bug');
    });
    socket.receive({ type: 'offer', from: 'u2', from_device: 'd2', payload: 1 });
    socket.receive({ type: 'offer', from: 'u2', from_device: 'd2', payload: 2 });
    assert.equal(seen('signal').length, 2);
    assert.equal(thrown.length, 2, 'each error surfaces on its own microtask');
  });
});

describe('rooms and presence', () => {
  test('join, publish, leave: the frames and answers', async (t) => {
    const { client, socket, seen } = await connected(t);
    const joined = client.join('r1');
    assert.equal(socket.last('subscribe').room, 'r1');
    socket.answer('subscribe', { type: 'subscribed', room: 'r1', members: [{ user: 'u1', device: 'd1' }] });
    assert.deepEqual(await joined, [{ user: 'u1', device: 'd1' }]);
    assert.deepEqual(seen('joined'), [{ room: 'r1', members: [{ user: 'u1', device: 'd1' }], rejoined: false }]);
    const published = client.publish('r1', { text: 'hi' });
    assert.deepEqual(socket.last('publish').payload, { text: 'hi' });
    socket.answer('publish', { type: 'ack' });
    await published;
    const forbidden = client.join('secret');
    socket.answer('subscribe', { type: 'error', code: 'forbidden', message: 'no' });
    await assert.rejects(forbidden, { code: 'forbidden' });
    const left = client.leave('r1');
    socket.answer('unsubscribe', { type: 'unsubscribed', room: 'r1' });
    await left;
  });

  test('watch: current states, then changes; presence query; unwatch', async (t) => {
    const { client, socket, seen } = await connected(t);
    const watched = client.watch(['u2', 'u3']);
    socket.answer('watch', { type: 'watching', users: { u2: 'online', u3: 'offline' } });
    assert.deepEqual(await watched, { u2: 'online', u3: 'offline' });
    assert.deepEqual(seen('presence'), [], 'the current state is the answer, not a change');
    socket.receive({ type: 'presence', user: 'u3', status: 'online' });
    socket.receive({ type: 'presence', user: 'u9', status: 'online' }); // not watched: ignored
    assert.deepEqual(seen('presence'), [{ user: 'u3', status: 'online' }]);
    assert.equal(client.presenceOf('u3'), 'online');
    const query = client.presence(['u4']);
    socket.answer('presence', { type: 'presence', users: { u4: 'offline' } });
    assert.deepEqual(await query, { u4: 'offline' });
    const unwatched = client.unwatch(['u3']);
    socket.answer('unwatch', { type: 'unwatched', users: ['u3'] });
    await unwatched;
    socket.receive({ type: 'presence', user: 'u3', status: 'offline' });
    assert.equal(seen('presence').length, 1, 'no events for an unwatched user');
  });

  test('a watch list over 100 users goes in frames of 100', async (t) => {
    const { client, socket } = await connected(t);
    const users = Array.from({ length: 150 }, (_, i) => `user${i}`);
    const watched = client.watch(users);
    const answerNext = () => {
      const frame = socket.last('watch');
      socket.answer('watch', { type: 'watching', users: Object.fromEntries((frame.users as string[]).map((u) => [u, 'offline'])) });
    };
    answerNext();
    await settle();
    answerNext();
    assert.equal(Object.keys(await watched).length, 150);
    assert.deepEqual(socket.sent.filter((f) => f.type === 'watch').map((f) => (f.users as string[]).length), [100, 50]);
  });

  test('after a reconnect, rooms are joined and users watched again; a change missed meanwhile is reported', async (t) => {
    const { client, server, socket, seen } = await connected(t);
    const joined = client.join('r1');
    socket.answer('subscribe', { type: 'subscribed', room: 'r1', members: [] });
    await joined;
    const watched = client.watch(['u2']);
    socket.answer('watch', { type: 'watching', users: { u2: 'online' } });
    await watched;
    const gone = client.join('r-gone');
    socket.answer('subscribe', { type: 'subscribed', room: 'r-gone', members: [] });
    await gone;
    const leaving = client.leave('r-gone');
    socket.serverClose(4010, 'slow_consumer');
    await assert.rejects(leaving, { code: 'closed' });

    t.mock.timers.tick(100);
    await settle();
    const next = server.last();
    assert.notEqual(next, socket);
    next.welcome(NO_HEARTBEAT);
    assert.deepEqual(next.sent.filter((f) => f.type === 'subscribe').map((f) => f.room), ['r1'], 'rooms left are not rejoined');
    assert.deepEqual(next.last('watch').users, ['u2']);
    next.answer('subscribe', { type: 'subscribed', room: 'r1', members: [{ user: 'u5', device: 'd5' }] });
    next.answer('watch', { type: 'watching', users: { u2: 'offline' } });
    await settle();
    assert.deepEqual(seen('joined').at(-1), { room: 'r1', members: [{ user: 'u5', device: 'd5' }], rejoined: true });
    assert.deepEqual(seen('watching').at(-1), { users: { u2: 'offline' } });
    assert.deepEqual(seen('presence'), [{ user: 'u2', status: 'offline' }], 'u2 went offline while we were away');
  });

  test('a rejoin refused (forbidden) is reported and not tried again', async (t) => {
    const { client, server, socket, seen } = await connected(t);
    const joined = client.join('r1');
    socket.answer('subscribe', { type: 'subscribed', room: 'r1', members: [] });
    await joined;
    socket.serverClose(1006);
    t.mock.timers.tick(100);
    await settle();
    server.last().welcome(NO_HEARTBEAT);
    server.last().answer('subscribe', { type: 'error', code: 'forbidden', message: 'not any more' });
    await settle();
    assert.deepEqual(seen('error').map((e) => e.code), ['forbidden']);
    server.last().serverClose(1006);
    t.mock.timers.tick(200);
    await settle();
    server.last().welcome(NO_HEARTBEAT);
    assert.deepEqual(server.last().sent.filter((f) => f.type === 'subscribe'), []);
  });
});
