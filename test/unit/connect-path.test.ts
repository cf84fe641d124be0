// The pieces of the connect path made cheap for bench W5: the query-string
// token scan, pooled random ids, the expiry wheel and the synchronous
// connection limits. Behaviour must match what they replaced.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ConnectionLimits } from '../../src/ratelimit/connection-limits';
import { queryParam } from '../../src/transport/http-types';
import { ExpiryWheel } from '../../src/session/expiry-wheel';
import { randomId } from '../../src/util/random-id';
import { eventually } from '../helpers/eventually';

test('queryParam reads a parameter exactly as URLSearchParams does', () => {
  const urlSearch = (query: string, name: string) => new URLSearchParams(query).get(name) ?? undefined;
  const part = fc.stringMatching(/^[a-z0-9=&%+._~-]{0,12}$/);
  fc.assert(
    fc.property(fc.array(part, { maxLength: 6 }), fc.constantFrom('token', 'to', 'tokens'), (parts, name) => {
      const query = parts.join('');
      // Malformed escapes are URLSearchParams's business either way; compare only well-formed queries.
      try {
        decodeURIComponent(query);
      } catch {
        return;
      }
      assert.equal(queryParam(query, name), urlSearch(query, name), query);
    }),
  );
  for (const [query, want] of [
    ['token=abc.def.ghi', 'abc.def.ghi'],
    ['x=1&token=t&token=u', 't'],
    ['tokens=1&token=2', '2'],
    ['token', ''],
    ['token=', ''],
    ['', undefined],
    ['token=a%2Eb', 'a.b'],
  ] as const)
    assert.equal(queryParam(query, 'token'), want, query);
});

test('randomId gives base64url ids of the asked size, never the same twice', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 5000; i++) {
    const id = randomId(16);
    assert.match(id, /^[A-Za-z0-9_-]{22}$/);
    assert.ok(!seen.has(id), 'an id repeated');
    seen.add(id);
  }
  assert.match(randomId(6), /^[A-Za-z0-9_-]{8}$/);
});

test('the expiry wheel expires items when their time comes, never removed ones, and stops its timer when empty', async () => {
  const wheel = new ExpiryWheel<{ expire(): void; expired: boolean }>();
  const item = () => ({ expired: false, expire() {
    this.expired = true;
  } });
  const soon = item();
  const removed = item();
  const later = item();
  const now = Date.now();
  wheel.add(soon, now + 50);
  wheel.remove(removed, wheel.add(removed, now + 50));
  const laterBucket = wheel.add(later, now + 3_600_000);
  assert.equal(wheel.size, 2);
  await eventually(() => assert.ok(soon.expired), 3000);
  assert.equal(removed.expired, false);
  assert.equal(later.expired, false);
  assert.equal(wheel.size, 1);
  wheel.remove(later, laterBucket);
  assert.equal(wheel.size, 0);
});

/** Address getters for ConnectionLimits that count how often the limits read one. */
function addressReads() {
  let reads = 0;
  const ip = (address: string) => () => {
    reads++;
    return address;
  };
  return { ip, asked: () => reads };
}

test('connection limits: node cap, per-IP cap and connect rate, decided synchronously; the address is read only when needed', () => {
  const { ip, asked } = addressReads();
  const open = new ConnectionLimits({ maxConnections: 2, maxConnectionsPerIp: 0, connectRatePerIp: 0 });
  const a = open.admit(ip('10.0.0.1'));
  const b = open.admit(ip('10.0.0.1'));
  assert.ok(a.ok && b.ok);
  assert.equal(asked(), 0, 'no per-IP limit: the address is never read');
  assert.deepEqual(open.admit(ip('10.0.0.1')), { ok: false, status: 503, code: 'node_full', message: 'this node is at MAX_CONNECTIONS; try another node' });
  open.release(a.ipKey);
  assert.ok(open.admit(ip('10.0.0.1')).ok);

  const perIp = new ConnectionLimits({ maxConnections: 0, maxConnectionsPerIp: 1, connectRatePerIp: 0 });
  const first = perIp.admit(ip('10.0.0.1'));
  assert.ok(first.ok);
  assert.equal(first.ipKey.length, 22);
  assert.ok(!first.ipKey.includes('10.0.0.1'));
  assert.equal(perIp.admit(ip('10.0.0.1')).ok, false);
  assert.ok(perIp.admit(ip('10.0.0.2')).ok, 'another address has its own count');
  perIp.release(first.ipKey);
  assert.ok(perIp.admit(ip('10.0.0.1')).ok);

  const rate = new ConnectionLimits({ maxConnections: 0, maxConnectionsPerIp: 0, connectRatePerIp: 2 });
  const decisions = [1, 2, 3].map(() => rate.admit(ip('10.0.0.9')));
  assert.deepEqual(decisions.map((d) => d.ok), [true, true, false]);
  assert.ok(rate.admit(ip('10.0.0.8')).ok);
  rate.close();
});

test('public requests draw on the per-IP attempt rate that upgrades use; without one the address is not read', () => {
  const { ip, asked } = addressReads();
  const off = new ConnectionLimits({ maxConnections: 1, maxConnectionsPerIp: 1, connectRatePerIp: 0 });
  assert.ok([1, 2, 3].every(() => off.admitRequest(ip('10.0.0.1')).allowed), 'requests hold no connection slot');
  assert.equal(asked(), 0);

  const rate = new ConnectionLimits({ maxConnections: 0, maxConnectionsPerIp: 0, connectRatePerIp: 3 });
  assert.ok(rate.admit(ip('10.0.0.9')).ok);
  assert.deepEqual([1, 2, 3].map(() => rate.admitRequest(ip('10.0.0.9')).allowed), [true, true, false], 'one upgrade and two requests use the budget of 3');
  const refused = rate.admitRequest(ip('10.0.0.9'));
  assert.ok(!refused.allowed && refused.retryAfterMs > 0 && refused.retryAfterMs <= 1000);
  assert.equal(rate.admit(ip('10.0.0.9')).ok, false, 'and the upgrades after them are refused too');
  assert.ok(rate.admitRequest(ip('10.0.0.8')).allowed, 'another address has its own budget');
  rate.close();
});
