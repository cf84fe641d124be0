// The pure parts of `switchboard tunnel` (src/sidecar/): settings, the
// token's facts and refresh time, reconnect delays, credit accounting and
// the header rules.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { INITIAL_CREDIT_BYTES } from '../../src/protocol/tunnel-stream-frames';
import { backoffDelayMs } from '../../src/sidecar/backoff';
import { GRANT_BATCH_BYTES, ReceiveWindow, SendWindow } from '../../src/sidecar/credit';
import { backendRequestHeaders, backendWsHeaders, canonicalHeaderName, offeredProtocols, relayedResponseHeaders, spelling } from '../../src/sidecar/headers';
import { loggableServer, socketUrl, tunnelConfig } from '../../src/sidecar/options';
import { readTunnelToken, refreshDelayMs } from '../../src/sidecar/token';
import { publicClose, sendableCode, truncateReason } from '../../src/sidecar/ws-relay';

const jwtOf = (payload: object) => `e30.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.sig`;
const NOW = 1_800_000_000;

test('the token is read without verifying: path_id required, iat not in the future', () => {
  assert.deepEqual(readTunnelToken(jwtOf({ path_id: 'p-1', iat: NOW, exp: NOW + 3600 }), NOW), { ok: true, facts: { pathId: 'p-1', iat: NOW, exp: NOW + 3600 } });
  assert.deepEqual(readTunnelToken(jwtOf({ path_id: 'p-1' }), NOW), { ok: true, facts: { pathId: 'p-1', iat: undefined, exp: undefined } });
  for (const [token, problem] of [
    ['abc', /not a JWT/],
    ['a.!!!.c', /not JSON/],
    [jwtOf([1]), /not a JSON object/],
    [jwtOf({ sub: 'x' }), /no path_id/],
    [jwtOf({ path_id: 'a/b' }), /no path_id/],
    [jwtOf({ path_id: 'p', iat: NOW + 3600 }), /future/],
  ] as const) {
    const read = readTunnelToken(token, NOW);
    assert.ok(!read.ok && problem.test(read.problem), `${token}: ${JSON.stringify(read)}`);
  }
  // A minute of clock skew is tolerated.
  assert.ok(readTunnelToken(jwtOf({ path_id: 'p', iat: NOW + 30 }), NOW).ok);
});

test('refresh at half-life, counted from what the server says is left', () => {
  const facts = { pathId: 'p', iat: NOW, exp: NOW + 3600 };
  assert.equal(refreshDelayMs(facts, 3600, NOW * 1000), 1800_000);
  assert.equal(refreshDelayMs(facts, undefined, (NOW + 600) * 1000), 1200_000, 'by the local clock without expires_in');
  assert.equal(refreshDelayMs(facts, 1000, NOW * 1000), 0, 'past half-life: at once');
  assert.equal(refreshDelayMs({ pathId: 'p', iat: undefined, exp: NOW + 100 }, undefined, NOW * 1000), 50_000);
  assert.equal(refreshDelayMs({ pathId: 'p', iat: NOW, exp: undefined }, 3600, NOW * 1000), undefined, 'no exp: never');
});

test('settings: flags over environment, every problem one line, the token in the query only', () => {
  const token = jwtOf({ path_id: 'p-1', iat: NOW });
  const ok = tunnelConfig({ to: 'http://127.0.0.1:3000/api' }, { SWITCHBOARD_SERVER: 'https://sb.example/base/', SWITCHBOARD_TOKEN: token, TUNNEL_TO: 'http://ignored' }, NOW);
  assert.ok(ok.ok);
  assert.equal(ok.config.server.href, 'wss://sb.example/base/');
  assert.equal(ok.config.to.href, 'http://127.0.0.1:3000/api');
  assert.equal(ok.config.heartbeatIntervalMs, 30_000);
  assert.ok(Object.isFrozen(ok.config));
  assert.equal(socketUrl(ok.config.server, 'a.b+c'), 'wss://sb.example/base/telephone/websocket?token=a.b%2Bc&vsn=2.0.0');
  assert.equal(socketUrl(new URL('ws://h:1/telephone/websocket'), 't'), 'ws://h:1/telephone/websocket?token=t&vsn=2.0.0');
  assert.equal(loggableServer(ok.config.server), 'wss://sb.example/base/');

  const bad = tunnelConfig({ server: 'ws://h?token=x', to: 'ftp://x', 'heartbeat-interval-ms': '5', 'log-level': 'loud' }, {}, NOW);
  assert.ok(!bad.ok);
  assert.deepEqual(
    bad.problems.map((p) => p.split(' ')[0]),
    ['--server', '--to', '--token', '--heartbeat-interval-ms', '--log-level'],
  );
});

test('backoff: exponential with equal jitter, capped', () => {
  const policy = { baseMs: 500, capMs: 30_000 };
  assert.equal(backoffDelayMs(0, policy, () => 0), 250);
  assert.equal(backoffDelayMs(0, policy, () => 0.999999), 500);
  assert.equal(backoffDelayMs(3, policy, () => 0), 2000);
  assert.equal(backoffDelayMs(100, policy, () => 0.999999), 30_000);
  fc.assert(
    fc.property(fc.nat(1000), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (attempt, r) => {
      const d = backoffDelayMs(attempt, policy, () => r);
      return d >= 250 && d <= 30_000;
    }),
  );
});

test('credit: a sender never passes what was granted; a receiver grants back in batches what was consumed', () => {
  const send = new SendWindow();
  assert.equal(send.take(INITIAL_CREDIT_BYTES + 1), INITIAL_CREDIT_BYTES);
  assert.equal(send.take(1), 0);
  send.grant(100);
  assert.equal(send.take(64 * 1024), 100);
  assert.equal(send.available, 0);

  const receive = new ReceiveWindow();
  assert.equal(receive.receive(INITIAL_CREDIT_BYTES), true);
  assert.equal(receive.receive(1), false, 'one byte over the window is a violation');
  const fresh = new ReceiveWindow();
  fresh.receive(INITIAL_CREDIT_BYTES);
  assert.equal(fresh.consume(GRANT_BATCH_BYTES - 1), 0);
  assert.equal(fresh.consume(1), GRANT_BATCH_BYTES);
  assert.equal(fresh.receive(GRANT_BATCH_BYTES), true, 'granted credit can be used');
  assert.equal(fresh.receive(1), false);

  // Whatever the consumption pattern, a peer that respects the window is never refused, and never stalls with all consumed.
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 64 * 1024 }), { maxLength: 200 }), (sizes) => {
      const window = new ReceiveWindow();
      let credit = INITIAL_CREDIT_BYTES;
      let pending = 0;
      for (const size of sizes) {
        const n = Math.min(size, credit);
        if (n === 0) return false; // stalled although everything sent was consumed
        credit -= n;
        if (!window.receive(n)) return false;
        pending += n;
        credit += window.consume(pending);
        pending = 0;
      }
      return true;
    }),
  );
});

test('headers: hop-by-hop dropped both ways, host and expect set by the sidecar, names canonical, cookies apart', () => {
  const entries: [string, string][] = [
    ['connection', 'keep-alive, X-Private'],
    ['x-private', 's'],
    ['keep-alive', '5'],
    ['te', 'trailers'],
    ['transfer-encoding', 'chunked'],
    ['upgrade', 'h2c'],
    ['host', 'public.example'],
    ['expect', '100-continue'],
    ['content-length', '10'],
    ['accept', 'a'],
    ['Accept', 'b'],
  ];
  assert.deepEqual({ ...backendRequestHeaders(entries, { streamed: false }) }, { accept: 'a, b' });
  assert.deepEqual({ ...backendRequestHeaders(entries, { streamed: true }) }, { 'content-length': '10', accept: 'a, b' });
  assert.deepEqual({ ...backendWsHeaders([['origin', 'o'], ['sec-websocket-protocol', 'a'], ['sec-websocket-key', 'k'], ['cookie', 'c']]) }, { origin: 'o', cookie: 'c' });
  assert.deepEqual(offeredProtocols([['sec-websocket-protocol', 'graphql-ws, wamp ,']]), ['graphql-ws', 'wamp']);

  assert.equal(canonicalHeaderName('x-request-id'), 'X-Request-Id');
  assert.equal(canonicalHeaderName('WWW-authenticate'), 'Www-Authenticate');
  assert.deepEqual(
    { ...relayedResponseHeaders({ 'content-type': 'text/plain', connection: 'close, x-hop', 'x-hop': '1', 'keep-alive': 't', vary: ['a', 'b'], 'set-cookie': ['a=1', 'b=2', 'c=3'] }) },
    { 'Content-Type': 'text/plain', Vary: 'a, b', 'Set-Cookie': 'a=1', 'set-cookie': 'b=2', 'Set-cookie': 'c=3' },
  );
  const spellings = Array.from({ length: 512 }, (_, i) => spelling('set-cookie', i));
  assert.equal(new Set(spellings).size, 512, 'every Set-Cookie line gets its own spelling');
  assert.ok(spellings.every((s) => s.toLowerCase() === 'set-cookie'));
});

test('close codes: what may be sent in a close frame, and reasons cut to 123 bytes on a character boundary', () => {
  assert.deepEqual(publicClose(1005, ''), [1000, '']);
  assert.deepEqual(publicClose(1006, ''), [1011, 'backend connection lost']);
  assert.deepEqual(publicClose(4000, 'bye'), [4000, 'bye']);
  for (const code of [1000, 1001, 1011, 1012, 3000, 4999]) assert.ok(sendableCode(code), String(code));
  for (const code of [999, 1004, 1005, 1006, 1015, 2000, 5000]) assert.ok(!sendableCode(code), String(code));
  const cut = truncateReason('é'.repeat(100));
  assert.ok(Buffer.byteLength(cut) <= 123);
  assert.equal(cut, 'é'.repeat(61));
});
