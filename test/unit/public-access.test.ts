// The access decision for public tunnel requests with stand-in verifier and
// limiters (the real ones run in test/integration/tunnel-access.test.ts), and
// the pure helpers that take the gate's credentials out of what is relayed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Claims, TokenVerifier, VerifyResult } from '../../src/auth/claims';
import { Metrics } from '../../src/metrics/metrics';
import { ALLOWED, type RateDecision } from '../../src/ratelimit/rate-limiter';
import type { RequestInfo } from '../../src/transport/http-types';
import { cookieValue, publicAccess, withoutConsumed, withoutCookie, withoutParam, type PublicAccessDeps } from '../../src/tunnel/public-access';
import type { PublicAccessDecision } from '../../src/tunnel/public-access';

test('withoutParam removes every token parameter however URLSearchParams would spell it, and keeps the rest byte for byte', () => {
  const cases: [string, string][] = [
    ['', ''],
    ['token=x', ''],
    ['a=1&token=x&b=%20y&a=2', 'a=1&b=%20y&a=2'],
    ['token=x&token=y&z', 'z'],
    ['token&a=1', 'a=1'],
    ['%74oken=x&t%6Fken=y&tok%65n', ''],
    ['tokens=1&xtoken=2&token_=3', 'tokens=1&xtoken=2&token_=3'],
    ['a=1&&b=2&', 'a=1&&b=2&'],
    ['a=%zz&token=x', 'a=%zz'],
    ['?token=x&a=%20', 'a=%20'],
  ];
  for (const [query, expected] of cases) assert.equal(withoutParam(query, 'token'), expected, query);
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.constantFrom('token=t', '%74oken=t', '?token=t', 'a=1', 'b=%20', '', '+', 'token'), fc.string()), { maxLength: 8 }), (pairs) => {
      const query = pairs.join('&');
      const left = withoutParam(query, 'token');
      assert.equal(new URLSearchParams(left).has('token'), false, query);
      const kept = query.split('&').filter((pair) => !new URLSearchParams(pair).has('token'));
      assert.equal(left, kept.join('&'));
    }),
  );
});

test('cookies: the named one is read (quotes removed) and removed, the others kept in order', () => {
  assert.equal(cookieValue('a=1; gate=abc; b=2', 'gate'), 'abc');
  assert.equal(cookieValue('gate="abc"', 'gate'), 'abc');
  assert.equal(cookieValue('a=1;gate=first;gate=second', 'gate'), 'first');
  assert.equal(cookieValue('xgate=1; gatex=2', 'gate'), undefined);
  assert.equal(cookieValue(undefined, 'gate'), undefined);

  assert.equal(withoutCookie('a=1;b=2', 'gate'), 'a=1;b=2', 'nothing to remove: the header as sent');
  assert.equal(withoutCookie('a=1; gate=x;b="2 3"', 'gate'), 'a=1; b="2 3"');
  assert.equal(withoutCookie('gate=x; gate=y', 'gate'), undefined);
  assert.equal(withoutCookie(' gate = x ; c', 'gate'), 'c');
});

test('withoutConsumed edits only headers that are still there', () => {
  const headers = Object.assign(Object.create(null) as Record<string, string>, { authorization: 'Bearer t', cookie: 'a=1; gate=t', accept: '*/*' });
  const decided = { ok: true as const, user: 'u', query: '', headers: { authorization: null, cookie: 'a=1' } };
  assert.deepEqual({ ...withoutConsumed(headers, decided) }, { cookie: 'a=1', accept: '*/*' });
  assert.equal(headers.authorization, 'Bearer t', 'the input is not changed');
  assert.deepEqual({ ...withoutConsumed({ accept: '*/*' }, decided) }, { accept: '*/*' }, 'a header the relay dropped is not brought back');
  const untouched = { accept: '*/*' };
  assert.equal(withoutConsumed(untouched, { ok: true, user: undefined, query: '' }), untouched);
});

// ── the decision, with stand-ins ─────────────────────────────────────────

const claims = (user: string, tunnels?: string[]): Claims => ({ user, roles: new Set(), ...(tunnels === undefined ? {} : { tunnels }) });

function harness(options: { auth?: 'open' | 'required'; verify?: (token: string) => VerifyResult | Promise<VerifyResult>; consume?: (user: string) => RateDecision | Promise<RateDecision>; perIp?: RateDecision } = {}) {
  const seen = { ipReads: 0, consumed: [] as string[] };
  const metrics = new Metrics({ node: 'unit' });
  const verifier: TokenVerifier = { verify: options.verify ?? ((token) => (token === 'good' ? { ok: true, claims: claims('alice', ['p*']) } : { ok: false, reason: 'token_invalid', detail: 'x' })) };
  const deps: PublicAccessDeps = {
    config: { TUNNEL_PUBLIC_AUTH: options.auth ?? 'required', TUNNEL_AUTH_COOKIE: 'gate' },
    verifier,
    limiter: {
      consume: (user) => {
        seen.consumed.push(user);
        return options.consume?.(user) ?? ALLOWED;
      },
    },
    limits: { admitRequest: (ip) => (ip() === '' ? ALLOWED : (options.perIp ?? ALLOWED)) },
    clientIp: () => {
      seen.ipReads++;
      return '10.0.0.1';
    },
    metrics,
  };
  return { access: publicAccess(deps), seen, metrics };
}

const request = (query: string, headers: Record<string, string> = {}): RequestInfo => ({
  method: 'get',
  path: '/call/p1/x',
  query,
  headers: Object.assign(Object.create(null) as Record<string, string>, headers),
  peerAddress: '10.0.0.1',
});

const okOf = (decision: PublicAccessDecision) => {
  if (!decision.ok) assert.fail(`refused: ${decision.reply.status} ${String(decision.reply.body)}`);
  return decision;
};

test('the token is read from the query, then the cookie, then Authorization; only what the gate used of Authorization is removed', () => {
  const { access } = harness();
  const fromQuery = okOf(access(request('token=good&a=1', { authorization: 'Bearer other', cookie: 'gate=stale; k=v' }), 'p1') as PublicAccessDecision);
  assert.deepEqual([fromQuery.user, fromQuery.query], ['alice', 'a=1']);
  assert.deepEqual({ ...fromQuery.headers }, { cookie: 'k=v' }, 'the gate cookie goes whatever carried the token; Authorization stays');
  const fromCookie = okOf(access(request('', { authorization: 'Bearer other', cookie: 'gate=good' }), 'p1') as PublicAccessDecision);
  assert.deepEqual({ ...fromCookie.headers }, { cookie: null });
  const fromHeader = okOf(access(request('', { authorization: 'Bearer good' }), 'p1') as PublicAccessDecision);
  assert.deepEqual({ ...fromHeader.headers }, { authorization: null });
  const empty = access(request('token=', { authorization: 'Basic abc' }), 'p1') as PublicAccessDecision;
  assert.equal(empty.ok ? 200 : empty.reply.status, 401, 'an empty token and a Basic header are no token');
});

test('a verifier or limiter that answers later (JWKS, Redis) gives the same decisions', async () => {
  const later = <T>(value: T) => new Promise<T>((resolve) => setImmediate(() => resolve(value)));
  const { access, seen } = harness({
    verify: (token) => later<VerifyResult>(token === 'good' ? { ok: true, claims: claims('alice', ['p1']) } : { ok: false, reason: 'token_expired', detail: 'jwt expired' }),
    consume: (user) => later<RateDecision>(user === 'alice' ? ALLOWED : { allowed: false, retryAfterMs: 1500 }),
  });
  const pending = access(request('token=good'), 'p1');
  assert.ok(pending instanceof Promise);
  assert.equal(okOf(await pending).user, 'alice');
  const expired = await access(request('token=old'), 'p1');
  assert.ok(!expired.ok && expired.reply.status === 401 && String(expired.reply.body).includes('token_expired'));
  const forbidden = await access(request('token=good'), 'p2');
  assert.ok(!forbidden.ok && forbidden.reply.status === 403);
  assert.deepEqual(seen.consumed, ['alice'], 'refused tokens cost the user nothing');
});

test('429s carry retry-after in whole seconds, rounded up, and are counted', async () => {
  const perUser = harness({ consume: () => ({ allowed: false, retryAfterMs: 1200 }) });
  const limited = perUser.access(request('token=good'), 'p1') as PublicAccessDecision;
  assert.ok(!limited.ok);
  assert.equal(limited.reply.status, 429);
  assert.equal(limited.reply.headers?.['retry-after'], '2');
  assert.equal((await perUser.metrics.rateLimitExceeded.get()).values[0]?.value, 1);

  const perIp = harness({ auth: 'open', perIp: { allowed: false, retryAfterMs: 30 } });
  const byIp = perIp.access(request(''), 'p1') as PublicAccessDecision;
  assert.ok(!byIp.ok && byIp.reply.status === 429 && byIp.reply.headers?.['retry-after'] === '1');
  assert.equal(perIp.seen.ipReads, 1);
});

test('open: through at once, anonymous, the query and headers untouched', () => {
  const { access, seen } = harness({ auth: 'open' });
  const decided = okOf(access(request('token=abc', { authorization: 'Bearer abc', cookie: 'gate=abc' }), 'p1') as PublicAccessDecision);
  assert.deepEqual(decided, { ok: true, user: undefined, query: 'token=abc' });
  assert.deepEqual(seen.consumed, []);
});
