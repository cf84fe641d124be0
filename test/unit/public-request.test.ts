import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { relayedRequestHeaders, relayedResponseHeaders, tunnelTarget } from '../../src/tunnel/public-request';

const ID = '550e8400-e29b-41d4-a716-446655440000';

test('a public request names its tunnel by /call/<path_id> or by subdomain; the rest is the relayed path', () => {
  assert.deepEqual(tunnelTarget(`/call/${ID}/echo/a`, 'sb.example.com', undefined), { ok: true, target: { pathId: ID, path: '/echo/a' } });
  assert.deepEqual(tunnelTarget(`/call/${ID}`, undefined, undefined), { ok: true, target: { pathId: ID, path: '/' } });
  assert.deepEqual(tunnelTarget(`/call/${ID}/`, undefined, undefined), { ok: true, target: { pathId: ID, path: '/' } });
  assert.deepEqual(tunnelTarget('/api/x', `${ID}.tunnels.example.com:8443`, 'tunnels.example.com'), { ok: true, target: { pathId: ID, path: '/api/x' } });
  assert.deepEqual(tunnelTarget('/api/x', 'MY-SVC.Tunnels.Example.com', 'tunnels.example.com'), { ok: true, target: { pathId: 'my-svc', path: '/api/x' } });
  // Not a tunnel: the apex domain, another domain, other paths, bad path ids.
  for (const [url, host] of [
    ['/api/x', 'tunnels.example.com'],
    ['/api/x', 'evil.com'],
    ['/ws', undefined],
    ['/call/', undefined],
    ['/call/a:b/x', undefined],
    ['/calls/x/y', undefined],
  ] as const)
    assert.equal(tunnelTarget(url, host, 'tunnels.example.com').ok, false, `${url} ${host}`);
  assert.deepEqual(tunnelTarget('/call/a@b/x', undefined, undefined), { ok: false, status: 404, message: 'not a tunnel path' });
});

test('a relayed path that climbs out of the mount is refused with 400, however it is written', () => {
  for (const path of ['/..', '/a/../../etc/passwd', '/%2e%2e/x', '/.%2E/x', '/a/..%2fb', '/a\\..\\b', '/%zz'])
    assert.deepEqual(tunnelTarget(`/call/${ID}${path}`, undefined, undefined), { ok: false, status: 400, message: 'the path may not contain ".." segments' }, path);
  for (const path of ['/a..b', '/...', '/a/.b', '/%2e/x'])
    assert.equal(tunnelTarget(`/call/${ID}${path}`, undefined, undefined).ok, true, path);
  fc.assert(fc.property(fc.string(), fc.option(fc.string(), { nil: undefined }), (url, host) => void tunnelTarget(url, host, 'example.com')));
});

test('request headers: hop-by-hop and Connection-named ones dropped, X-Forwarded-* added, an earlier X-Forwarded-For extended only behind a trusted proxy', () => {
  const relayed = relayedRequestHeaders(
    {
      host: 'sb.example.com',
      connection: 'keep-alive, X-Secret-Hop',
      'keep-alive': 'timeout=5',
      'x-secret-hop': '1',
      te: 'trailers',
      'transfer-encoding': 'chunked',
      upgrade: 'h2c',
      'proxy-authorization': 'Basic x',
      'content-type': 'application/json',
      'x-forwarded-for': '203.0.113.9',
    },
    { peerIp: '198.51.100.7', viaTrustedProxy: true, proto: 'https', host: 'sb.example.com' },
  );
  assert.deepEqual({ ...relayed }, {
    host: 'sb.example.com',
    'content-type': 'application/json',
    'x-forwarded-for': '203.0.113.9, 198.51.100.7',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'sb.example.com',
  });
  // From an untrusted peer, a client's own X-Forwarded-For is replaced, not extended.
  assert.equal(relayedRequestHeaders({ 'x-forwarded-for': '10.0.0.1' }, { peerIp: '198.51.100.7', viaTrustedProxy: false, proto: 'http', host: undefined })['x-forwarded-for'], '198.51.100.7');
  const proto = Object.create(null) as Record<string, string>;
  proto.__proto__ = 'kept';
  assert.equal(relayedRequestHeaders(proto, { peerIp: '::1', viaTrustedProxy: false, proto: 'http', host: undefined }).__proto__, 'kept');
});

test('response headers: lowercased, framing, Date (uWS writes its own) and hop-by-hop dropped, repeated names joined but cookies kept apart', () => {
  assert.deepEqual(
    relayedResponseHeaders([
      ['Content-Type', 'text/plain; charset=utf-8'],
      ['Content-Length', '15'],
      ['Date', 'Sat, 05 Dec 2026 20:00:00 GMT'],
      ['Transfer-Encoding', 'chunked'],
      ['Connection', 'close, X-Hop'],
      ['X-Hop', 'gone'],
      ['Set-Cookie', 'a=1'],
      ['set-cookie', 'b=2'],
      ['X-Tag', 'x'],
      ['x-tag', 'y'],
    ]),
    [
      ['content-type', 'text/plain; charset=utf-8'],
      ['x-tag', 'x, y'],
      ['set-cookie', 'a=1'],
      ['set-cookie', 'b=2'],
    ],
  );
});

test('fuzz regressions: paths a URL parser turns into ".." and headers that could start a line of their own are refused', () => {
  // WHATWG URL drops tabs and newlines, trims the ends, and ends the path at '#': each of these was relayed and resolved above the mount.
  for (const path of ['/.\t./x', '/%2e\n%2e/x', '/..#x', '/a/.. ', '/..%23'])
    assert.deepEqual(tunnelTarget(`/call/${ID}${path}`, undefined, undefined), { ok: false, status: 400, message: 'the path may not contain ".." segments' }, JSON.stringify(path));
  assert.equal(tunnelTarget('http://evil.example/x', `${ID}.tunnels.example.com`, 'tunnels.example.com').ok, false);
  // uWS writes a header value as given: a sidecar's CR/LF became a Set-Cookie of its own.
  assert.deepEqual(relayedResponseHeaders([['x-a', 'v\r\nset-cookie: evil=1'], ['bad name', 'v'], ['x-b', 'ok']]), [['x-b', 'ok']]);
  const relayed = relayedRequestHeaders({ 'x-a': 'a\nb', '': 'v', 'x-b': 'ok' }, { peerIp: '198.51.100.7', viaTrustedProxy: false, proto: 'http', host: 'h\r\nx: 1' });
  assert.deepEqual({ ...relayed }, { 'x-b': 'ok', 'x-forwarded-for': '198.51.100.7', 'x-forwarded-proto': 'http' });
});
