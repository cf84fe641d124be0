// The SDK's token handling: exp read without verifying, when the in-band
// refresh (SPEC §3.5) is scheduled, what it sends, and what follows its
// success or failure.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import jwt from 'jsonwebtoken';
import { refreshDelayMs, stillFresh, tokenExpiry } from '../../src/client/token';
import { fakeJwt, settle } from '../helpers/fake-websocket';
import { EPOCH_MS, NO_HEARTBEAT, sdkClient } from '../helpers/sdk-client';

const NOW_S = EPOCH_MS / 1000;

describe('token expiry', () => {
  test('exp of a real JWT, of base64url payloads with - and _, and of none', () => {
    assert.equal(tokenExpiry(jwt.sign({ sub: 'u1', exp: 1_900_000_000 }, 'secret-secret-secret-secret-secret')), 1_900_000_000);
    // Claims whose JSON encodes to base64url's - and _ (and non-ASCII text).
    const odd = fakeJwt({ sub: '>>>???~~~ü', exp: 1234 });
    assert.match(odd.split('.')[1] ?? '', /[-_]/);
    assert.equal(tokenExpiry(odd), 1234);
    assert.equal(tokenExpiry(fakeJwt({ sub: 'u1' })), undefined, 'no exp');
    assert.equal(tokenExpiry(fakeJwt({ exp: '1234' })), undefined, 'exp not a number');
    for (const opaque of ['', 'opaque-token', 'a.!!!.c', 'a..c']) assert.equal(tokenExpiry(opaque), undefined, opaque);
  });

  test('refresh delay: margin before expiry; half-way for short tokens; zero when expired', () => {
    const now = EPOCH_MS;
    assert.equal(refreshDelayMs(NOW_S + 3600, now, 60_000), 3_540_000);
    assert.equal(refreshDelayMs(NOW_S + 60, now, 60_000), 30_000, 'a token with less than twice the margin: half-way');
    assert.equal(refreshDelayMs(NOW_S, now, 60_000), 0);
    assert.equal(refreshDelayMs(NOW_S - 10, now, 60_000), 0);
    assert.equal(stillFresh(fakeJwt({ exp: NOW_S + 61 }), now, 60_000), true);
    assert.equal(stillFresh(fakeJwt({ exp: NOW_S + 60 }), now, 60_000), false);
    assert.equal(stillFresh('opaque', now, 60_000), true, 'an opaque token is used until refused');
  });
});

describe('in-band token refresh', () => {
  test('scheduled a margin before exp; sends refresh with the new token; the next one follows the new exp', async (t) => {
    const issued: string[] = [];
    const reasons: string[] = [];
    const { client, server, seen } = sdkClient(t, {
      token: ({ reason }) => {
        reasons.push(reason);
        const token = fakeJwt({ sub: 'u1', exp: NOW_S + 3600 * (issued.length + 1) });
        issued.push(token);
        return Promise.resolve(token);
      },
      refreshMarginMs: 60_000,
    });
    void client.connect().catch(() => undefined);
    await settle();
    const socket = server.last();
    socket.welcome(NO_HEARTBEAT);
    t.mock.timers.tick(3_540_000 - 1);
    await settle();
    assert.deepEqual(reasons, ['connect']);
    assert.equal(socket.sent.filter((f) => f.type === 'refresh').length, 0);
    t.mock.timers.tick(1);
    await settle();
    assert.deepEqual(reasons, ['connect', 'expiring']);
    assert.equal(socket.last('refresh').token, issued[1]);
    socket.answer('refresh', { type: 'refreshed', exp: NOW_S + 7200 });
    await settle();
    assert.deepEqual(seen('token_refreshed'), [{ exp: NOW_S + 7200 }]);
    // The second token expires at +7200 s: its refresh comes at +7140 s.
    t.mock.timers.tick(3_600_000 - 1);
    await settle();
    assert.equal(reasons.length, 2);
    t.mock.timers.tick(1);
    await settle();
    assert.equal(reasons.length, 3);
    // A reconnect now uses the refreshed token.
    socket.answer('refresh', { type: 'refreshed', exp: NOW_S + 10_800 });
    await settle();
    socket.serverClose(4010);
    t.mock.timers.tick(100);
    await settle();
    assert.equal(server.last().token, issued[2]);
  });

  test('refused refresh (token_invalid) and a failing provider are reported as errors; the connection stays', async (t) => {
    let calls = 0;
    const { client, server, seen } = sdkClient(t, {
      token: () => (++calls === 2 ? Promise.resolve(fakeJwt({ sub: 'someone-else', exp: NOW_S + 3600 })) : calls === 1 ? Promise.resolve(fakeJwt({ exp: NOW_S + 120 })) : Promise.reject(new Error('auth server down'))),
      refreshMarginMs: 30_000,
    });
    void client.connect().catch(() => undefined);
    await settle();
    const socket = server.last();
    socket.welcome(NO_HEARTBEAT);
    t.mock.timers.tick(90_000);
    await settle();
    socket.answer('refresh', { type: 'error', code: 'token_invalid', message: 'the token is for another user' });
    await settle();
    assert.deepEqual(seen('error').map((e) => e.code), ['token_invalid']);
    assert.equal(client.state, 'open');
    // The server then closes with 4001 at expiry; the reconnect asks the provider, which fails: reported, retried with backoff.
    socket.serverClose(4001, 'token_expired');
    t.mock.timers.tick(0);
    await settle();
    assert.deepEqual(seen('error').map((e) => e.code), ['token_invalid', 'token_provider']);
    assert.match(seen('error')[1]?.message ?? '', /auth server down/);
    assert.equal(client.state, 'reconnecting');
  });

  test('a fixed token is never refreshed', async (t) => {
    const { client, server } = sdkClient(t, { token: fakeJwt({ sub: 'u1', exp: NOW_S + 120 }) });
    void client.connect().catch(() => undefined);
    await settle();
    server.last().welcome(NO_HEARTBEAT);
    t.mock.timers.tick(119_000);
    await settle();
    assert.deepEqual(server.last().sent, []);
  });
});
