// Properties of the public HTTP relay's path and header handling (SPEC §5,
// src/tunnel/public-request.ts): no relayed path climbs out of the back end's
// prefix however a back end resolves it, and no header that describes a hop, or
// that could start a header line of its own, crosses the relay either way.
import assert from 'node:assert/strict';
import path from 'node:path';
import fc from 'fast-check';
import { connectionOptions, HOP_BY_HOP } from '../../src/http/hop-by-hop';
import { PATH_ID_PATTERN } from '../../src/protocol/names';
import { relayedRequestHeaders, type ForwardedFor, relayedResponseHeaders, tunnelTarget } from '../../src/tunnel/public-request';
import { hostileString, NASTY_STRINGS } from './arbitraries';
import { fuzzProperty, type FuzzProperty } from './property';

const DOMAIN = 'tunnels.example.com';
const BACKEND = 'http://backend.invalid';
const PREFIX = '/base';

/** Path segments that mean something to some resolver: dots, encoded dots and slashes, backslashes, controls a URL parser strips. */
const SEGMENTS = ['..', '.', '%2e%2e', '%2E%2e', '.%2e', '%2e.', '..%2f', '..%5c', '%2f', '%5c', '\\', '', 'a', 'x.y', '.\t.', '.\n.', '%2e\t%2e', '..#', '..?', '%00', '%', '%zz', '..;', ' ..', '.. '];
const segment = fc.oneof({ arbitrary: fc.constantFrom(...SEGMENTS), weight: 4 }, { arbitrary: hostileString, weight: 1 });
const relPath = fc.tuple(fc.array(segment, { maxLength: 8 }), fc.constantFrom('/', '\\', '//')).map(([segments, separator]) => `/${segments.join(separator)}`);
const pathId = fc.oneof(fc.stringMatching(/^[A-Za-z0-9_.-]{1,12}$/), fc.constantFrom('..', '.', 'a:b', ''), hostileString);
const url = fc.oneof(
  { arbitrary: fc.tuple(pathId, relPath).map(([id, rest]) => `/call/${id}${rest}`), weight: 4 },
  { arbitrary: relPath, weight: 2 },
  { arbitrary: hostileString, weight: 1 },
);
const host = fc.option(fc.oneof(pathId.map((id) => `${id}.${DOMAIN}`), pathId.map((id) => `${id}.${DOMAIN}:8443`), hostileString), { nil: undefined });

/**
 * tunnelTarget: 404/400 with a message, or a path under `/` that stays under the back end's prefix
 * when a back end joins it to its base (both sidecars do) and resolves it as a WHATWG URL (browsers,
 * Node's URL, the sidecar's WebSocket relay), or percent-decodes and normalises it (a file server).
 */
function checkTarget([u, h, domain]: [string, string | undefined, string | undefined]): void {
  const target = tunnelTarget(u, h, domain);
  if (!target.ok) return assert.ok((target.status === 400 || target.status === 404) && target.message.length > 0);
  const { pathId: id, path: relayed } = target.target;
  assert.ok(PATH_ID_PATTERN.test(id), id);
  assert.ok(relayed.startsWith('/'), relayed);
  const joined = new URL(`${BACKEND}${PREFIX}${relayed}`);
  assert.ok(joined.origin === BACKEND && underPrefix(joined.pathname), `${relayed} resolves to ${joined.href}`);
  const set = new URL(`${BACKEND}${PREFIX}`);
  set.pathname = `${PREFIX}${relayed}`;
  assert.ok(set.origin === BACKEND && underPrefix(set.pathname), `${relayed} set as a pathname is ${set.pathname}`);
  assert.ok(underPrefix(path.posix.normalize(`${PREFIX}${decodeURIComponent(relayed).replace(/\\/g, '/')}`)), `${relayed} decoded and normalised climbs`);
}

function underPrefix(p: string): boolean {
  return p === PREFIX || p.startsWith(`${PREFIX}/`);
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const UNSAFE = /[\r\n\0]/;

/** Header names a proxy must not pass, names that are not names, names of Object.prototype's members. */
const headerName = fc.oneof(
  fc.constantFrom(...HOP_BY_HOP, 'content-length', 'date', 'host', 'x-forwarded-for', 'x-a', 'x-b', 'set-cookie', 'Connection', 'Transfer-Encoding', 'X-A', 'Set-Cookie'),
  fc.constantFrom(...NASTY_STRINGS),
  fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/),
  hostileString,
);
const headerValue = fc.oneof(
  { arbitrary: fc.constantFrom('close', 'x-a', 'keep-alive, X-B', 'ok', 'a\r\nset-cookie: evil=1', 'a\nb', 'a\rb', 'a\u0000b', ' x-a , , TE '), weight: 2 },
  { arbitrary: hostileString, weight: 2 },
);
/** A headers object as uWS hands it over, `__proto__` and all (built through JSON.parse). */
const requestHeaders = fc
  .array(fc.tuple(headerName, headerValue), { maxLength: 10 })
  .map((entries) => JSON.parse(`{${entries.map(([n, v]) => `${JSON.stringify(n.toLowerCase())}:${JSON.stringify(v)}`).join(',')}}`) as Record<string, string>);
const forwarded: fc.Arbitrary<ForwardedFor> = fc.record({
  peerIp: fc.constantFrom('198.51.100.7', '2001:db8::1'),
  viaTrustedProxy: fc.boolean(),
  proto: fc.constantFrom('http' as const, 'https' as const),
  host: fc.option(fc.oneof(fc.constant('sb.example.com'), hostileString), { nil: undefined }),
});

function checkRequestHeaders([headers, via]: [Record<string, string>, ForwardedFor]): void {
  const out = relayedRequestHeaders(headers, via);
  const named = connectionOptions(headers.connection);
  assert.equal(Object.getPrototypeOf(out), null);
  for (const [name, value] of Object.entries(out)) {
    assert.ok(!HOP_BY_HOP.has(name) && !named.has(name), `${name} is hop-by-hop`);
    assert.ok(TOKEN.test(name), `${JSON.stringify(name)} is not a header name`);
    assert.ok(typeof value === 'string' && !UNSAFE.test(value), `${name}: ${JSON.stringify(value)} could start a header of its own`);
  }
  assert.ok(out['x-forwarded-for']?.endsWith(via.peerIp));
  assert.equal(out['x-forwarded-proto'], via.proto);
}

function checkResponseHeaders(entries: [string, string][]): void {
  const out = relayedResponseHeaders(entries);
  const connection = entries.filter(([n]) => n.toLowerCase() === 'connection').at(-1)?.[1];
  const named = connectionOptions(connection);
  for (const [name, value] of out) {
    assert.ok(name === name.toLowerCase() && !HOP_BY_HOP.has(name) && !named.has(name) && name !== 'content-length' && name !== 'date', `${name} passed`);
    assert.ok(TOKEN.test(name), `${JSON.stringify(name)} is not a header name`);
    assert.ok(!UNSAFE.test(value), `${name}: ${JSON.stringify(value)} could start a header of its own`);
  }
  assert.ok(out.filter(([n]) => n !== 'set-cookie').length === new Set(out.map(([n]) => n).filter((n) => n !== 'set-cookie')).size, 'a name repeated');
}

export const relayProperties: FuzzProperty[] = [
  fuzzProperty('public relay: tunnelTarget never lets a path out of its prefix', fc.tuple(url, host, fc.constantFrom(undefined, DOMAIN)), checkTarget),
  fuzzProperty('public relay: request headers keep no hop-by-hop header and no CR/LF/NUL', fc.tuple(requestHeaders, forwarded), checkRequestHeaders),
  fuzzProperty('public relay: response headers keep no hop-by-hop or framing header and no CR/LF/NUL', fc.array(fc.tuple(headerName, headerValue), { maxLength: 10 }), checkResponseHeaders),
];
