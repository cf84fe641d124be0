// SwitchboardClient's reconnects, per close code, on a fake WebSocket under
// mock timers: when the next socket opens, to which URL, with which token;
// when none does; and the backoff's reset after a stable connection.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fakeJwt, settle } from '../helpers/fake-websocket';
import { connectedSdkClient, EPOCH_MS, NO_HEARTBEAT, sdkClient } from '../helpers/sdk-client';

/** A provider handing out token-1, token-2, ... and recording why it was asked. */
function tokenProvider() {
  const reasons: string[] = [];
  const provider = (request: { reason: string }) => {
    reasons.push(request.reason);
    return Promise.resolve(`token-${reasons.length}`);
  };
  return { provider, reasons };
}

describe('client reconnects by close code', () => {
  test('connect: the first URL, the token in the query; welcome resolves connect()', async (t) => {
    const { client, server, seen } = sdkClient(t);
    const welcomed = client.connect();
    await settle();
    assert.equal(server.sockets.length, 1);
    assert.equal(server.last().url, 'ws://a.test/ws?token=fixed-token');
    assert.equal(client.state, 'connecting');
    server.last().welcome({ ...NO_HEARTBEAT, node: 'node-a' });
    assert.equal((await welcomed).node, 'node-a');
    assert.equal(client.state, 'open');
    assert.deepEqual(seen('connecting'), [{ url: 'ws://a.test/ws' }], 'the event names the URL without the token');
  });

  test('4010 slow consumer: reconnects after the backoff delay, to the next URL, same token', async (t) => {
    const { client, server, seen } = await connectedSdkClient(t);
    server.last().serverClose(4010, 'slow_consumer');
    assert.deepEqual(seen('disconnected'), [{ code: 4010, reason: 'slow_consumer', reconnectInMs: 100 }]);
    assert.equal(client.state, 'reconnecting');
    t.mock.timers.tick(99);
    await settle();
    assert.equal(server.sockets.length, 1, 'not before the delay');
    t.mock.timers.tick(1);
    await settle();
    assert.equal(server.sockets.length, 2);
    assert.equal(server.last().url, 'ws://b.test/ws?token=fixed-token&resume=s1', 'the session asked back (SPEC §3.9)');
  });

  test('1012 draining: waits for the hint, then reconnects to the next URL without backoff', async (t) => {
    const { client, server, seen } = sdkClient(t, { backoff: { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5, resetAfterMs: 5000 } });
    t.mock.method(Math, 'random', () => 0.5);
    void client.connect().catch(() => undefined);
    await settle();
    server.last().welcome(NO_HEARTBEAT);
    server.last().receive({ type: 'draining', reconnect_after_ms: 300 });
    assert.deepEqual(seen('draining'), [{ reconnectAfterMs: 300 }]);
    // The socket goes early (a spread drain may close before the hint); the client still waits for it.
    t.mock.timers.tick(100);
    server.last().serverClose(1012, 'draining');
    // 200 ms left of the hint + a short jitter (initialMs * jitter * random = 25).
    assert.equal(seen('disconnected')[0]?.reconnectInMs, 225);
    t.mock.timers.tick(224);
    await settle();
    assert.equal(server.sockets.length, 1);
    t.mock.timers.tick(1);
    await settle();
    assert.equal(server.sockets.length, 2);
    assert.equal(new URL(server.last().url).host, 'b.test', 'another node');

    // A second drain, now from b: back to a, and the delay did not grow like a backoff.
    server.last().welcome(NO_HEARTBEAT);
    server.last().receive({ type: 'draining', reconnect_after_ms: 0 });
    server.last().serverClose(1012, 'draining');
    assert.equal(seen('disconnected')[1]?.reconnectInMs, 25);
    t.mock.timers.tick(25);
    await settle();
    assert.equal(new URL(server.last().url).host, 'a.test');
  });

  test('1008 at connect: a new token from the provider, then a reconnect after the backoff', async (t) => {
    const tokens = tokenProvider();
    const { client, server, seen } = sdkClient(t, { token: tokens.provider, device: 'phone' });
    void client.connect().catch(() => undefined);
    await settle();
    assert.equal(server.last().token, 'token-1');
    server.last().serverClose(1008, 'token_expired');
    assert.equal(seen('disconnected')[0]?.reconnectInMs, 100);
    t.mock.timers.tick(100);
    await settle();
    assert.deepEqual(tokens.reasons, ['connect', 'rejected']);
    assert.equal(server.sockets.length, 2);
    assert.equal(server.last().token, 'token-2');
    server.last().welcome(NO_HEARTBEAT);
    assert.equal(client.state, 'open');
  });

  test('1008 again with the same token from the provider: stops (closed, token_not_renewed)', async (t) => {
    const { client, server, seen } = sdkClient(t, { token: () => Promise.resolve('always-the-same') });
    const welcomed = client.connect();
    welcomed.catch(() => undefined); // asserted below
    await settle();
    server.last().serverClose(1008, 'token_invalid');
    t.mock.timers.tick(100);
    await settle();
    assert.equal(server.sockets.length, 1, 'no second socket with a token known to fail');
    assert.deepEqual(seen('closed'), [{ code: 1008, reason: 'token_not_renewed' }]);
    assert.equal(client.state, 'closed');
    await assert.rejects(welcomed, { code: 'closed' });
  });

  test('1008 or 4001 with a fixed token: stops at once', async (t) => {
    for (const code of [1008, 4001]) {
      const { client, server, seen } = sdkClient(t);
      void client.connect().catch(() => undefined);
      await settle();
      server.last().serverClose(code, 'token_expired');
      assert.deepEqual(seen('disconnected'), [{ code, reason: 'token_expired', reconnectInMs: undefined }]);
      assert.deepEqual(seen('closed'), [{ code, reason: 'token_expired' }]);
      t.mock.timers.tick(60_000);
      await settle();
      assert.equal(server.sockets.length, 1);
      t.mock.timers.reset();
    }
  });

  test('4001 token expired: a new token, reconnect soon (no backoff)', async (t) => {
    const tokens = tokenProvider();
    const { client, server, seen } = sdkClient(t, { token: tokens.provider });
    void client.connect().catch(() => undefined);
    await settle();
    server.last().welcome(NO_HEARTBEAT);
    server.last().serverClose(4001, 'token_expired');
    assert.equal(seen('disconnected')[0]?.reconnectInMs, 0, 'jitter 0: at once');
    t.mock.timers.tick(0);
    await settle();
    assert.deepEqual(tokens.reasons, ['connect', 'rejected']);
    assert.equal(server.last().token, 'token-2');
  });

  test('4009 replaced: no reconnect, ever; closed says why', async (t) => {
    const { client, server, seen } = await connectedSdkClient(t);
    server.last().serverClose(4009, 'replaced');
    assert.deepEqual(seen('disconnected'), [{ code: 4009, reason: 'replaced', reconnectInMs: undefined }]);
    assert.deepEqual(seen('closed'), [{ code: 4009, reason: 'replaced' }]);
    assert.equal(client.state, 'closed');
    t.mock.timers.tick(3_600_000);
    await settle();
    assert.equal(server.sockets.length, 1);
  });

  test('other closes (network loss 1006, 4008, 1011): backoff grows per failed attempt, up to maxMs', async (t) => {
    const { client, server, seen } = sdkClient(t);
    void client.connect().catch(() => undefined);
    await settle();
    for (const code of [1006, 4008, 1011, 1006, 1006, 1006]) {
      server.last().serverClose(code);
      const delay = seen('disconnected').at(-1)?.reconnectInMs ?? -1;
      t.mock.timers.tick(delay);
      await settle();
    }
    assert.deepEqual(seen('disconnected').map((d) => d.reconnectInMs), [100, 200, 400, 800, 1000, 1000]);
    assert.equal(server.sockets.length, 7);
    assert.deepEqual(server.sockets.map((s) => new URL(s.url).host), ['a.test', 'b.test', 'a.test', 'b.test', 'a.test', 'b.test', 'a.test'], 'URLs in rotation');
  });

  test('the backoff resets once a connection stayed up resetAfterMs, not before', async (t) => {
    const { client, server, seen } = sdkClient(t);
    void client.connect().catch(() => undefined);
    await settle();
    const dropAfter = async (upMs: number) => {
      server.last().welcome(NO_HEARTBEAT);
      t.mock.timers.tick(upMs);
      server.last().serverClose(1006);
      t.mock.timers.tick(seen('disconnected').at(-1)?.reconnectInMs ?? -1);
      await settle();
    };
    await dropAfter(10);
    await dropAfter(4999);
    await dropAfter(10);
    await dropAfter(5000); // stable: the next delay starts over
    await dropAfter(10);
    assert.deepEqual(seen('disconnected').map((d) => d.reconnectInMs), [100, 200, 400, 100, 200]);
  });

  test('close(): no reconnect, waiting requests rejected, closed with 1000', async (t) => {
    const { client, server, seen } = await connectedSdkClient(t);
    const pending = client.send('u2', 'offer', { sdp: 'x' });
    client.close();
    await assert.rejects(pending, { code: 'closed' });
    assert.deepEqual(server.last().closedByClient, { code: 1000, reason: 'client_closed' });
    assert.deepEqual(seen('closed'), [{ code: 1000, reason: 'client_closed' }]);
    t.mock.timers.tick(60_000);
    await settle();
    assert.equal(server.sockets.length, 1);
    // A late close event of the old socket changes nothing.
    server.last().serverClose(1006);
    assert.equal(seen('disconnected').length, 1);
  });

  test('close() while waiting to reconnect, and while the token provider runs', async (t) => {
    let release: (token: string) => void = () => undefined;
    const { client, server, seen } = sdkClient(t, { token: () => new Promise<string>((resolve) => (release = resolve)) });
    void client.connect().catch(() => undefined);
    await settle();
    client.close(); // the provider has not answered yet
    release('late-token');
    await settle();
    assert.equal(server.sockets.length, 0, 'a token that comes after close() opens nothing');
    assert.deepEqual(seen('closed'), [{ code: 1000, reason: 'client_closed' }]);
  });

  test('heartbeat: a ping every heartbeat_ms; no pong within sendTimeoutMs drops the socket (4000) and reconnects', async (t) => {
    const { client, server, seen } = sdkClient(t);
    void client.connect().catch(() => undefined);
    await settle();
    server.last().welcome({ heartbeat_ms: 10_000 });
    t.mock.timers.tick(10_000);
    server.last().answer('ping', { type: 'pong', ts: EPOCH_MS });
    await settle();
    t.mock.timers.tick(10_000);
    assert.equal(server.last().sent.filter((f) => f.type === 'ping').length, 2, 'a second ping after the pong');
    t.mock.timers.tick(2000); // no pong this time
    await settle();
    assert.deepEqual(server.sockets[0]?.closedByClient, { code: 4000, reason: 'heartbeat_timeout' });
    assert.deepEqual(seen('disconnected'), [{ code: 4000, reason: 'heartbeat_timeout', reconnectInMs: 100 }]);
    t.mock.timers.tick(100);
    await settle();
    assert.equal(server.sockets.length, 2);
  });

  test('a reconnect reuses a token that is still fresh, and asks for a new one near its expiry', async (t) => {
    const reasons: string[] = [];
    const { client, server } = sdkClient(t, {
      token: ({ reason }) => (reasons.push(reason), Promise.resolve(fakeJwt({ sub: 'u1', exp: EPOCH_MS / 1000 + 1200 }))),
      refreshMarginMs: 300_000,
      backoff: { initialMs: 500_000, maxMs: 500_000, factor: 1, jitter: 0, resetAfterMs: 1e9 },
    });
    void client.connect().catch(() => undefined);
    await settle();
    server.last().serverClose(1006);
    t.mock.timers.tick(500_000);
    await settle();
    assert.equal(server.sockets.length, 2);
    assert.deepEqual(reasons, ['connect'], '700 s left, more than the margin: reused');
    server.last().serverClose(1006);
    t.mock.timers.tick(500_000);
    await settle();
    assert.equal(server.sockets.length, 3);
    assert.deepEqual(reasons, ['connect', 'expiring'], '200 s left: a new one');
  });
});
