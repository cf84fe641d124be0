// SPEC §1 (endpoints, 404), §6.1 (health, readiness, liveness) and §6.2
// (Prometheus metrics: names, types, labels, cardinality, METRICS_PORT), and the
// metrics operations add to them (errors by code, draining, MAX_CONNECTIONS).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ERROR_CODES } from '../../src/errors/codes';
import { eventually } from '../helpers/eventually';
import { http } from '../helpers/http';
import { startTestNode, type TestNode } from '../helpers/node';
import { freePort } from '../helpers/redis';
import { TestClient } from '../helpers/ws-client';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus text exposition: the samples and the `# TYPE` of each metric family. */
function parseMetrics(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type !== null) types.set(type[1] ?? '', type[2] ?? '');
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    assert.ok(m !== null, `unparseable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] ?? ''] = l[2] ?? '';
    samples.push({ name: m[1] ?? '', labels, value: Number(m[3]) });
  }
  return { samples, types };
}

async function scrape(port: number): Promise<{ samples: Sample[]; types: Map<string, string>; text: string }> {
  const res = await http(port, 'GET', '/metrics');
  assert.equal(res.status, 200);
  return { ...parseMetrics(res.body), text: res.body };
}

/** The value of one sample; `labels` must all match (other labels, e.g. the default `node`, are ignored). */
function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.equal(found.length, 1, `${name}${JSON.stringify(labels)}: ${found.length} samples`);
  return found[0]?.value ?? NaN;
}

/** Like valueOf, but a series not created yet counts as 0 (a counter before its first increment). */
function valueOr0(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const exists = samples.some((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return exists ? valueOf(samples, name, labels) : 0;
}


const HEALTH_KEYS = ['bus', 'connections', 'node', 'redis', 'status', 'tunnels', 'uptime_s', 'version'];

async function health(node: TestNode, path = '/health'): Promise<Record<string, unknown>> {
  const res = await http(node.port, 'GET', path);
  assert.equal(res.status, 200, res.body);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  return res.json() as Record<string, unknown>;
}

describe('health probes', () => {
  for (const path of ['/health', '/healthz']) {
    test(`${path}: 200 with exactly {status,node,version,uptime_s,connections,tunnels,bus,redis}`, async (t) => {
      const node = await startTestNode(t);
      const body = await health(node, path);
      assert.deepEqual(Object.keys(body).sort(), HEALTH_KEYS);
      assert.equal(body.status, 'healthy');
      assert.equal(body.node, node.config.nodeId);
      assert.equal(typeof body.version, 'string');
      assert.notEqual(body.version, '');
      assert.ok(Number.isInteger(body.uptime_s) && (body.uptime_s as number) >= 0, `uptime_s ${String(body.uptime_s)}`);
      assert.equal(body.connections, 0);
      assert.equal(body.tunnels, 0);
      assert.equal(body.bus, 'memory');
      assert.equal(body.redis, 'n/a');
    });
  }

  test('connections counts open app sockets (not failed-auth ones) and follows closes', async (t) => {
    const node = await startTestNode(t);
    const a = await TestClient.welcomed(node.port, node.token({ sub: 'ann', device_id: 'a1' }));
    const b = await TestClient.welcomed(node.port, node.token({ sub: 'ann', device_id: 'a2' }));
    const c = await TestClient.welcomed(node.port, node.token({ sub: 'ben' }));
    const rejected = await TestClient.connect(node.port, { token: 'not-a-jwt' });
    t.after(() => [a, b, c, rejected].forEach((x) => x.close()));
    await rejected.waitClosed();
    await eventually(async () => assert.equal((await health(node)).connections, 3));
    await eventually(async () => assert.equal((await health(node, '/healthz')).connections, 3));
    a.close();
    c.close();
    await eventually(async () => assert.equal((await health(node)).connections, 1));
    b.close();
    await eventually(async () => assert.equal((await health(node)).connections, 0));
  });

  const probes: [string, number][] = [
    ['/ready', 200],
    ['/readyz', 200],
    ['/live', 200],
    ['/livez', 200],
  ];
  for (const [path, status] of probes) {
    test(`${path} → ${status} JSON`, async (t) => {
      const node = await startTestNode(t);
      const res = await http(node.port, 'GET', path);
      assert.equal(res.status, status, res.body);
      assert.match(String(res.headers['content-type']), /^application\/json/);
      assert.equal(typeof res.json(), 'object');
    });
  }
});

describe('unknown paths', () => {
  const cases: [string, string][] = [
    ['GET', '/nope'],
    ['POST', '/nope'],
    ['GET', '/v1'],
    ['GET', '/healthy'],
    ['GET', '/v1/publish/extra'],
    ['DELETE', '/health/x'],
    ['POST', '/metrics/x'],
  ];
  for (const [method, path] of cases) {
    test(`${method} ${path} → 404 {"error":"not_found","message":...}`, async (t) => {
      const node = await startTestNode(t);
      const res = await http(node.port, method, path, method === 'POST' ? { body: '{"a":1}', headers: { 'content-type': 'application/json' } } : {});
      assert.equal(res.status, 404, res.body);
      assert.match(String(res.headers['content-type']), /^application\/json/);
      const body = res.json() as Record<string, unknown>;
      assert.equal(body.error, 'not_found');
      assert.equal(typeof body.message, 'string');
      // The node still answers after a 404.
      assert.equal((await http(node.port, 'GET', '/live')).status, 200);
    });
  }
});

describe('/metrics', () => {
  // SPEC §6.2: [name, type, label names besides the registry's default ones]
  const SPEC_METRICS: [string, 'gauge' | 'counter' | 'histogram', string[]][] = [
    ['signaling_active_connections', 'gauge', []],
    ['signaling_messages_received_total', 'counter', ['type']],
    ['signaling_messages_sent_total', 'counter', ['type']],
    ['signaling_rate_limit_exceeded_total', 'counter', []],
    ['signaling_connection_duration_seconds', 'histogram', []],
    ['signaling_message_delivery_seconds', 'histogram', ['scope']],
    ['signaling_bus_messages_total', 'counter', ['direction']],
    ['signaling_bus_up', 'gauge', []],
    ['relay_requests_total', 'counter', ['status']],
    ['relay_request_duration_seconds', 'histogram', []],
    ['relay_tunnels_active', 'gauge', []],
  ];
  // Beyond SPEC §6.2, for the dashboard and the alerts (monitoring/): same rule, no label names a user, device, room or path.
  const OPS_METRICS: typeof SPEC_METRICS = [
    ['signaling_errors_total', 'counter', ['code']],
    ['signaling_draining', 'gauge', []],
    ['signaling_max_connections', 'gauge', []],
  ];
  const ALL_METRICS = [...SPEC_METRICS, ...OPS_METRICS];
  const DEFAULTS = ['process_cpu_user_seconds_total', 'process_cpu_system_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes'];

  test('text/plain exposition with every SPEC §6.2 and operations metric (right type) and prom-client defaults', async (t) => {
    const node = await startTestNode(t);
    const res = await http(node.port, 'GET', '/metrics');
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    const { types } = parseMetrics(res.body);
    for (const [name, type] of ALL_METRICS) assert.equal(types.get(name), type, `# TYPE of ${name}`);
    for (const name of DEFAULTS) assert.ok(types.has(name), `default metric ${name} missing`);
  });

  test('label names are the SPEC ones; spec values for scope and direction; error codes from the one table', async (t) => {
    const node = await startTestNode(t);
    const a = await TestClient.welcomed(node.port, node.token({ sub: 'ann' }));
    const b = await TestClient.welcomed(node.port, node.token({ sub: 'ben' }));
    t.after(() => [a, b].forEach((c) => c.close()));
    await a.request({ type: 'offer', to: 'ben', payload: 1 }, 'ack');
    await a.request({ type: 'offer', to: 'nobody-here', payload: 1 }, 'error');
    a.close();
    const { samples } = await scrape(node.port);
    // Labels every sample may carry: the registry's default labels (the same set on all samples).
    const defaults = new Set(Object.keys(samples.find((s) => s.name === 'signaling_bus_up')?.labels ?? {}));
    for (const [name, type, labelNames] of ALL_METRICS) {
      const family = samples.filter((s) => s.name === name || (type === 'histogram' && /^(.*)_(bucket|sum|count)$/.exec(s.name)?.[1] === name));
      for (const s of family) {
        const own = Object.keys(s.labels).filter((k) => !defaults.has(k) && !(s.name.endsWith('_bucket') && k === 'le'));
        for (const k of own) assert.ok(labelNames.includes(k), `${s.name} has label ${k}; SPEC allows ${labelNames.join(',') || 'none'}`);
      }
    }
    const values = (name: string, label: string) => new Set(samples.filter((s) => s.name === name && label in s.labels).map((s) => s.labels[label]));
    for (const v of values('signaling_message_delivery_seconds_count', 'scope')) assert.ok(v === 'local' || v === 'remote', `scope=${v}`);
    for (const v of values('signaling_bus_messages_total', 'direction')) assert.ok(v === 'in' || v === 'out', `direction=${v}`);
    for (const v of values('relay_requests_total', 'status')) assert.match(v ?? '', /^[1-5]xx$/);
    // Exactly the codes of src/errors/codes.ts, each once: a fixed set, never a client's text.
    assert.deepEqual([...values('signaling_errors_total', 'code')].sort(), Object.keys(ERROR_CODES).sort());
  });

  test('counters move with traffic: received{type=offer}, sent{type=offer|ack}, active connections, durations, rate limit', async (t) => {
    const node = await startTestNode(t, { RATE_LIMIT_POINTS: '5', RATE_LIMIT_STRIKES: '1000' });
    const before = (await scrape(node.port)).samples;
    const ann = await TestClient.welcomed(node.port, node.token({ sub: 'ann' }));
    const ben = await TestClient.welcomed(node.port, node.token({ sub: 'ben' }));
    t.after(() => [ann, ben].forEach((c) => c.close()));

    await eventually(async () => assert.equal(valueOf((await scrape(node.port)).samples, 'signaling_active_connections'), 2));
    assert.equal((await ann.request({ type: 'offer', to: 'ben', payload: { sdp: 'v=0' } }, 'ack')).type, 'ack');
    await ben.next('offer');

    const after = (await scrape(node.port)).samples;
    const delta = (name: string, labels: Record<string, string> = {}) => valueOf(after, name, labels) - valueOr0(before, name, labels);
    assert.equal(delta('signaling_messages_received_total', { type: 'offer' }), 1);
    assert.equal(delta('signaling_messages_sent_total', { type: 'offer' }), 1);
    assert.equal(delta('signaling_messages_sent_total', { type: 'ack' }), 1);
    assert.equal(delta('signaling_messages_sent_total', { type: 'welcome' }), 2);
    assert.equal(delta('signaling_message_delivery_seconds_count', { scope: 'local' }), 1);
    assert.equal(delta('signaling_rate_limit_exceeded_total'), 0);

    // Flood past RATE_LIMIT_POINTS (5 per second): every refused frame is answered and counted once.
    for (let i = 0; i < 20; i++) ben.send({ type: 'ping' });
    const refused = () => ben.all('error').filter((f) => f.code === 'rate_limited').length;
    await eventually(() => assert.equal(ben.all('pong').length + refused(), 20));
    assert.ok(refused() >= 1);
    assert.equal(delta('signaling_rate_limit_exceeded_total'), 0);
    const flooded = (await scrape(node.port)).samples;
    assert.equal(valueOf(flooded, 'signaling_rate_limit_exceeded_total'), refused());
    assert.equal(valueOf(flooded, 'signaling_errors_total', { code: 'rate_limited' }), refused());

    ann.close();
    await eventually(async () => {
      const now = (await scrape(node.port)).samples;
      assert.equal(valueOf(now, 'signaling_active_connections'), 1);
      assert.equal(valueOf(now, 'signaling_connection_duration_seconds_count') - valueOf(before, 'signaling_connection_duration_seconds_count'), 1);
    });
  });

  test('the label sets of known frame types, scopes and directions exist at zero before any traffic', async (t) => {
    // metrics.ts initFrameTypes() promises "dashboards see zeros, not gaps": rate() and
    // absent() alerts need the series to exist before the first increment.
    const node = await startTestNode(t);
    const { samples } = await scrape(node.port);
    const expected: [string, Record<string, string>][] = [
      ['signaling_messages_received_total', { type: 'offer' }],
      ['signaling_messages_received_total', { type: 'invalid' }],
      ['signaling_messages_sent_total', { type: 'welcome' }],
      ['signaling_messages_sent_total', { type: 'error' }],
      ['signaling_message_delivery_seconds_count', { scope: 'local' }],
      ['signaling_message_delivery_seconds_count', { scope: 'remote' }],
      ['signaling_bus_messages_total', { direction: 'in' }],
      ['signaling_bus_messages_total', { direction: 'out' }],
      ...Object.keys(ERROR_CODES).map((code): [string, Record<string, string>] => ['signaling_errors_total', { code }]),
    ];
    const missing = expected
      .filter(([name, labels]) => !samples.some((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)))
      .map(([name, labels]) => `${name}${JSON.stringify(labels)}`);
    assert.deepEqual(missing, []);
  });

  test('signaling_errors_total counts every error frame a client gets, by its code', async (t) => {
    const node = await startTestNode(t);
    const before = (await scrape(node.port)).samples;
    const c = await TestClient.welcomed(node.port, node.token({ sub: 'ann' }));
    t.after(() => c.close());
    // One error of each kind the client can cause alone: bad_message (malformed and binary), unknown_type,
    // peer_offline, not_subscribed.
    c.ws.send('{"type":');
    assert.equal((await c.next('error')).code, 'bad_message');
    c.ws.send(Buffer.from([0, 1, 2]));
    assert.equal((await c.next('error')).code, 'bad_message');
    assert.equal((await c.request({ type: 'hack' }, 'error')).code, 'unknown_type');
    assert.equal((await c.request({ type: 'message', to: 'nobody', payload: 1 }, 'error')).code, 'peer_offline');
    assert.equal((await c.request({ type: 'publish', room: 'lobby', payload: 1 }, 'error')).code, 'not_subscribed');

    const after = (await scrape(node.port)).samples;
    const delta = (name: string, labels: Record<string, string>) => valueOf(after, name, labels) - valueOf(before, name, labels);
    const moved = Object.fromEntries(Object.keys(ERROR_CODES).map((code) => [code, delta('signaling_errors_total', { code })]));
    assert.deepEqual(moved, { ...Object.fromEntries(Object.keys(ERROR_CODES).map((code) => [code, 0])), bad_message: 2, unknown_type: 1, peer_offline: 1, not_subscribed: 1 });
    // Each error frame counted once by code and once among the frames sent.
    assert.equal(delta('signaling_messages_sent_total', { type: 'error' }), 5);
  });

  test('signaling_max_connections is the configured MAX_CONNECTIONS (0: unlimited)', async (t) => {
    const unlimited = await startTestNode(t);
    assert.equal(valueOf((await scrape(unlimited.port)).samples, 'signaling_max_connections'), 0);
    const limited = await startTestNode(t, { MAX_CONNECTIONS: '7' });
    assert.equal(limited.config.MAX_CONNECTIONS, 7);
    assert.equal(valueOf((await scrape(limited.port)).samples, 'signaling_max_connections'), 7);
  });

  test('signaling_draining is 0 while serving and 1 from the start of a drain (shutdown) on', async (t) => {
    // Two clients, closed 0 and DRAIN_SPREAD_MS after the drain starts: /metrics still answers in between.
    const node = await startTestNode(t, { DRAIN_SPREAD_MS: '1000' });
    const clients = [await TestClient.welcomed(node.port, node.token({ sub: 'ann' })), await TestClient.welcomed(node.port, node.token({ sub: 'ben' }))];
    t.after(() => clients.forEach((c) => c.close()));
    assert.equal(valueOf((await scrape(node.port)).samples, 'signaling_draining'), 0);
    const stopping = node.shutdown();
    assert.equal(valueOf((await scrape(node.port)).samples, 'signaling_draining'), 1);
    assert.equal((await http(node.port, 'GET', '/ready')).status, 503);
    assert.ok(clients.some((c) => c.closed === undefined), 'the drain had already ended');
    await stopping;
    // Until the process exits (the listeners are closed now, so asked in-process).
    assert.equal((await node.metrics.draining.get()).values[0]?.value, 1);
  });

  test('no label value (nor any text) in /metrics carries a user id, device id or room name', async (t) => {
    const node = await startTestNode(t);
    const user1 = 'zq-user-alpha';
    const user2 = 'zq-user-bravo';
    const device = 'zq-device-charlie';
    const room = 'zq-room-delta';
    const a = await TestClient.welcomed(node.port, node.token({ sub: user1, device_id: device }));
    const b = await TestClient.welcomed(node.port, node.token({ sub: user2 }));
    t.after(() => [a, b].forEach((c) => c.close()));
    await a.request({ type: 'subscribe', room }, 'subscribed');
    await b.request({ type: 'subscribe', room }, 'subscribed');
    await a.request({ type: 'publish', room, payload: 'hi' }, 'ack');
    await b.request({ type: 'offer', to: user1, device, payload: 1 }, 'ack');
    await b.request({ type: 'message', to: 'zq-user-offline', payload: 1 }, 'error');
    await b.request({ type: 'watch', users: [user1] }, 'watching');
    await b.request({ type: 'presence', users: [user1, 'zq-user-offline'] }, 'presence');
    const admin = node.token({ sub: 'zq-admin', roles: ['admin'] });
    assert.equal(
      (await http(node.port, 'POST', '/v1/publish', { headers: { authorization: `Bearer ${admin}` }, body: JSON.stringify({ room, event: 'zq-event', payload: 1 }) })).status,
      202,
    );
    const { samples, text } = await scrape(node.port);
    const secrets = [user1, user2, device, room, 'zq-user-offline', 'zq-admin', 'zq-'];
    for (const s of samples)
      for (const [k, v] of Object.entries(s.labels)) for (const secret of secrets) assert.ok(!v.includes(secret), `${s.name}{${k}="${v}"} carries "${secret}"`);
    for (const secret of secrets) assert.ok(!text.includes(secret), `/metrics mentions "${secret}"`);
  });

  test('METRICS_PORT: /metrics is served there too; every other path there is 404', async (t) => {
    const metricsPort = await freePort();
    const node = await startTestNode(t, { METRICS_PORT: String(metricsPort) });
    assert.equal(node.metricsPort, metricsPort);
    const res = await http(metricsPort, 'GET', '/metrics');
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    const { types } = parseMetrics(res.body);
    for (const [name, type] of ALL_METRICS) assert.equal(types.get(name), type, name);
    // The main port still serves /metrics.
    assert.equal((await http(node.port, 'GET', '/metrics')).status, 200);

    for (const [method, path] of [
      ['GET', '/health'],
      ['GET', '/ready'],
      ['GET', '/'],
      ['GET', '/v1/presence?users=ann'],
      ['POST', '/v1/publish'],
    ] as const) {
      const other = await http(metricsPort, method, path);
      assert.equal(other.status, 404, `${method} ${path} on METRICS_PORT`);
      assert.equal((other.json() as Record<string, unknown>).error, 'not_found');
    }
  });
});
