// SPEC §2 ("tokens never appear in logs"), §3.4 ("no IP address is stored"),
// STYLE "Logs": pino records never carry a token, an Authorization header, a
// query string or a client address; security events are audit records
// (`audit: true`, stable `event`) that a log pipeline can route.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { eventually } from '../helpers/eventually';
import { http } from '../helpers/http';
import { startTestNode, type TestNode } from '../helpers/node';
import { TestClient } from '../helpers/ws-client';

const AUDIT_EVENTS = ['auth_failed', 'takeover', 'admin_publish', 'admin_auth_failed', 'connection_rejected', 'rate_limit_close'];
const now = () => Math.floor(Date.now() / 1000);
// Above the most connections the scenario below has open at once (refused and
// replaced sockets are released when the server sees their close).
const PER_IP = 8;

type LogRecord = Record<string, unknown>;

const audits = (node: TestNode, event: string, where: (r: LogRecord) => boolean = () => true): LogRecord[] =>
  node.logs.filter((r) => r.audit === true && r.event === event && where(r));

/** Waits for an audit record of `event` matching `where`, and returns it. */
async function auditRecord(node: TestNode, event: string, where: (r: LogRecord) => boolean = () => true): Promise<LogRecord> {
  return eventually(() => {
    const found = audits(node, event, where);
    assert.ok(found.length > 0, `no audit record "${event}" matching; audit records: ${JSON.stringify(node.logs.filter((r) => r.audit === true))}`);
    return found[0] as LogRecord;
  });
}

/**
 * No record holds a token (whole, or its signature alone), the Bearer scheme,
 * a query string with a token, or a loopback address in any of its spellings
 * (uWS gives IPv4 peers as IPv4-mapped IPv6, in long or short form).
 */
function assertNothingSecretLogged(node: TestNode, tokens: string[]): void {
  const text = JSON.stringify(node.logs);
  const forbidden = [
    ...tokens,
    ...tokens.map((tok) => tok.split('.')[2] ?? '').filter((sig) => sig.length >= 16),
    'Bearer',
    'bearer ',
    '?token=',
    'token=',
    '127.0.0.1',
    '::1',
    '7f00:0001',
    '7f00:1',
  ];
  for (const needle of forbidden) {
    const at = text.indexOf(needle);
    assert.equal(at, -1, `logs contain ${JSON.stringify(needle)}: …${text.slice(Math.max(0, at - 200), at + 100)}…`);
  }
}

/** Every audit record is `info`, has `audit: true` and a known `event`. */
function assertAuditShape(node: TestNode): void {
  const records = node.logs.filter((r) => r.audit === true);
  assert.ok(records.length > 0);
  for (const r of records) {
    assert.ok(AUDIT_EVENTS.includes(r.event as string), `unknown audit event ${String(r.event)}`);
    assert.equal(r.level, 'info', JSON.stringify(r));
    assert.equal(typeof r.time, 'string');
  }
}

describe('logging', () => {
  test('connect, bad connect, refresh, takeover, admin API, 429: audit records, and no token, Bearer, query or IP in any record', async (t) => {
    const node = await startTestNode(t, { MAX_CONNECTIONS_PER_IP: String(PER_IP) });
    const used: string[] = [];
    const mint = (claims: Record<string, unknown>) => {
      const token = node.token(claims);
      used.push(token);
      return token;
    };

    // A good connect with ?token=.
    const first = await TestClient.welcomed(node.port, mint({ sub: 'ann', device_id: 'phone' }));
    t.after(() => first.close());

    // A bad-token connect (well-formed JWT, wrong signature) and a garbage one.
    const forged = mint({ sub: 'ann' }).replace(/\.[^.]+$/, '.c2lnbmF0dXJlLXRoYXQtZG9lcy1ub3QtbWF0Y2gtYXQtYWxs');
    used.push(forged);
    const garbage = 'garbage-token-value-zq81';
    used.push(garbage);
    for (const token of [forged, garbage]) {
      const bad = await TestClient.connect(node.port, { token });
      t.after(() => bad.close());
      assert.deepEqual(await bad.waitClosed(), { code: 1008, reason: 'token_invalid' });
    }
    // An expired token.
    const expired = mint({ sub: 'ann', exp: now() - 600 });
    const late = await TestClient.connect(node.port, { token: expired });
    t.after(() => late.close());
    assert.deepEqual(await late.waitClosed(), { code: 1008, reason: 'token_expired' });
    await auditRecord(node, 'auth_failed', (r) => r.reason === 'token_invalid' && r.phase === 'connect');
    await auditRecord(node, 'auth_failed', (r) => r.reason === 'token_expired' && r.phase === 'connect');

    // A refresh frame, good and bad.
    assert.equal((await first.request({ type: 'refresh', token: mint({ sub: 'ann', device_id: 'phone' }) }, 'refreshed')).type, 'refreshed');
    assert.equal((await first.request({ type: 'refresh', token: mint({ sub: 'ben' }) })).code, 'token_invalid');
    await auditRecord(node, 'auth_failed', (r) => r.phase === 'refresh');

    // A takeover: the same (user, device) again closes the older with 4009.
    const second = await TestClient.welcomed(node.port, mint({ sub: 'ann', device_id: 'phone' }));
    t.after(() => second.close());
    assert.equal((await first.waitClosed()).code, 4009);
    await auditRecord(node, 'takeover');

    // The admin API with an Authorization header: accepted, forbidden, refused.
    const admin = mint({ sub: 'backend', roles: ['admin'] });
    const publish = (token: string) =>
      http(node.port, 'POST', '/v1/publish', { headers: { authorization: `Bearer ${token}` }, body: JSON.stringify({ to: 'ann', event: 'call-initiated', payload: {} }) });
    assert.equal((await publish(admin)).status, 202);
    assert.equal((await publish(mint({ sub: 'ann' }))).status, 403);
    assert.equal((await publish(garbage)).status, 401);
    assert.equal((await http(node.port, 'GET', '/v1/presence?users=ann', { headers: { authorization: `Bearer ${mint({ sub: 'x', exp: now() - 600 })}` } })).status, 401);
    assert.equal((await http(node.port, 'GET', '/v1/presence?users=ann')).status, 401);
    await auditRecord(node, 'admin_auth_failed', (r) => r.reason === 'not_admin');
    await auditRecord(node, 'admin_auth_failed', (r) => r.reason === 'token_invalid');
    await auditRecord(node, 'admin_auth_failed', (r) => r.reason === 'token_expired');
    await auditRecord(node, 'admin_auth_failed', (r) => r.reason === 'token_missing');

    // A 429: open connections from this address until MAX_CONNECTIONS_PER_IP refuses one.
    let refusal: unknown;
    for (let i = 0; i <= PER_IP && refusal === undefined; i++) {
      const token = mint({ sub: `filler${i}` });
      try {
        const c = await TestClient.welcomed(node.port, token);
        t.after(() => c.close());
      } catch (error) {
        refusal = error;
      }
    }
    assert.equal((refusal as { status?: number } | undefined)?.status, 429);
    // The Bearer header form is refused the same way.
    await assert.rejects(TestClient.connect(node.port, {}, { authorization: `Bearer ${mint({ sub: 'cat' })}` }), { status: 429 });
    await auditRecord(node, 'connection_rejected', (r) => r.status === 429);

    assertNothingSecretLogged(node, used);
    await auditRecord(node, 'admin_publish');
    assertAuditShape(node);
  });

  test('admin publish → one audit record with event "admin_publish" (the published event name does not replace it)', async (t) => {
    const node = await startTestNode(t);
    const token = node.token({ sub: 'backend', roles: ['admin'] });
    for (const body of [{ to: 'ann', event: 'call-initiated' }, { room: 'r', event: 'admin_auth_failed' }, { broadcast: true, event: 'x' }]) {
      const res = await http(node.port, 'POST', '/v1/publish', { headers: { authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
      assert.equal(res.status, 202);
    }
    await eventually(() => assert.equal(node.logs.filter((r) => r.msg === 'admin_publish').length, 3));
    const records = node.logs.filter((r) => r.msg === 'admin_publish');
    assert.deepEqual(
      records.map((r) => [r.audit, r.event]),
      [
        [true, 'admin_publish'],
        [true, 'admin_publish'],
        [true, 'admin_publish'],
      ],
    );
    // The two failures must not be confused by a log pipeline routing on `event`.
    assert.equal(audits(node, 'admin_auth_failed').length, 0);
    assertAuditShape(node);
    assertNothingSecretLogged(node, [token]);
  });

  test('rate-limit abuse: 50 pings over RATE_LIMIT_POINTS=2 with RATE_LIMIT_STRIKES=3 → close 4008 and a rate_limit_close audit record', async (t) => {
    const node = await startTestNode(t, { RATE_LIMIT_POINTS: '2', RATE_LIMIT_STRIKES: '3' });
    const token = node.token({ sub: 'flooder', device_id: 'f1' });
    const flooder = await TestClient.welcomed(node.port, token);
    const bystander = await TestClient.welcomed(node.port, node.token({ sub: 'calm' }));
    t.after(() => [flooder, bystander].forEach((c) => c.close()));
    for (let i = 0; i < 50; i++) flooder.send({ type: 'ping' });
    assert.deepEqual(await flooder.waitClosed(), { code: 4008, reason: 'rate_limited' });
    // Strikes up to RATE_LIMIT_STRIKES get rate_limited errors, not more pongs than the points allow.
    assert.ok(flooder.all('pong').length <= 2, `pongs: ${flooder.all('pong').length}`);
    assert.ok(flooder.all('error').every((f) => f.code === 'rate_limited' && typeof f.retry_after_ms === 'number'));
    const record = await auditRecord(node, 'rate_limit_close');
    assert.equal(record.user, 'flooder');
    assert.equal(audits(node, 'rate_limit_close').length, 1);
    // Another user is not affected.
    assert.equal((await bystander.request({ type: 'ping' }, 'pong')).type, 'pong');
    assertAuditShape(node);
    assertNothingSecretLogged(node, [token]);
  });

  test('a token in the query of plain HTTP requests and of the upgrade is never logged', async (t) => {
    const node = await startTestNode(t);
    const token = node.token({ sub: 'ann' });
    // The token in the query of plain HTTP requests too: 404 paths, probes, metrics.
    for (const path of ['/nope', '/health', '/metrics', '/v1/presence'])
      await http(node.port, 'GET', `${path}?token=${encodeURIComponent(token)}&users=ann`);
    await http(node.port, 'POST', `/v1/publish?token=${encodeURIComponent(token)}`, { body: '{}' });
    const c = await TestClient.welcomed(node.port, token);
    t.after(() => c.close());
    await c.request({ type: 'ping' }, 'pong');
    assertNothingSecretLogged(node, [token]);
  });
});
