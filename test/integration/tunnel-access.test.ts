// Access control on the public side of tunnels (README "Access control for
// tunnels"): TUNNEL_PUBLIC_AUTH=required asks for an app JWT whose `tunnels`
// claim opens the path, the gate's credentials never reach the back end, and
// public requests count against the per-user and per-IP limits. A real back
// end behind a baseline sidecar; HTTP with node:http, WebSockets with `ws`.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import jwt from 'jsonwebtoken';
import WebSocket from 'ws';
import { startBackend } from '../helpers/backend';
import { BaselineSidecar } from '../helpers/baseline-sidecar';
import { eventually } from '../helpers/eventually';
import { http, type HttpResult } from '../helpers/http';
import { startTestNode, type TestNode } from '../helpers/node';

const PATH = 'team-alpha.1';

interface Echo {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string | undefined>;
  body: string;
}

const tunnelToken = (node: TestNode) => node.token({ sub: 'tunnel', jti: 'j1', path_id: PATH, roles: ['tunnel'], iat: Math.floor(Date.now() / 1000) });

async function setup(t: TestContext, env: Record<string, string> = { TUNNEL_PUBLIC_AUTH: 'required' }) {
  const node = await startTestNode(t, env);
  const backend = await startBackend(t);
  const sidecar = await BaselineSidecar.connect(t, node.port, tunnelToken(node), PATH, { backend: backend.origin });
  return { node, backend, sidecar };
}

const get = (node: TestNode, path: string, headers: Record<string, string> = {}) => http(node.port, 'GET', `/call/${PATH}${path}`, { headers });
const errorOf = (res: HttpResult) => (res.json() as { error: string; message: string }).error;
const echoOf = (res: HttpResult) => {
  assert.equal(res.status, 200, res.body);
  return res.json() as Echo;
};

/** A WebSocket upgrade: the HTTP status it was refused with, or the open socket. */
function upgrade(t: TestContext, node: TestNode, path: string, headers: Record<string, string> = {}): Promise<{ status: number; ws?: WebSocket }> {
  const ws = new WebSocket(`ws://127.0.0.1:${node.port}/call/${PATH}${path}`, { headers });
  t.after(() => ws.terminate());
  ws.on('error', () => undefined);
  return new Promise((resolve) => {
    ws.once('open', () => resolve({ status: 101, ws }));
    ws.once('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0 }));
  });
}

const rateLimitRejections = async (node: TestNode) => (await node.metrics.rateLimitExceeded.get()).values[0]?.value ?? 0;

test('required: 401 without a valid token, 403 outside the tunnels claim, 200 inside it or for admin; refused requests never reach the sidecar', async (t) => {
  const { node, sidecar } = await setup(t);
  const now = Math.floor(Date.now() / 1000);
  const refused: [string, Record<string, string>, number, string, RegExp][] = [
    ['no token', {}, 401, 'unauthorized', /token is required/],
    ['a token that is not a JWT', { authorization: 'Bearer not-a-jwt' }, 401, 'unauthorized', /token_invalid/],
    ['signed with another key', { authorization: `Bearer ${jwt.sign({ sub: 'alice', tunnels: [PATH], exp: now + 60 }, 'another-secret-of-at-least-thirty-two-bytes', { algorithm: 'HS256' })}` }, 401, 'unauthorized', /token_invalid/],
    ['expired', { authorization: `Bearer ${node.token({ sub: 'alice', tunnels: [PATH], exp: now - 60 })}` }, 401, 'unauthorized', /token_expired/],
    ['no tunnels claim', { authorization: `Bearer ${node.token({ sub: 'alice' })}` }, 403, 'forbidden', /tunnels claim/],
    ['an empty tunnels claim', { authorization: `Bearer ${node.token({ sub: 'alice', tunnels: [] })}` }, 403, 'forbidden', /tunnels claim/],
    ['a pattern that does not match', { authorization: `Bearer ${node.token({ sub: 'alice', tunnels: ['team-beta*', 'team-alpha'] })}` }, 403, 'forbidden', /tunnels claim/],
    ['a tunnel token is no access token', { authorization: `Bearer ${tunnelToken(node)}` }, 403, 'forbidden', /tunnels claim/],
  ];
  for (const [name, headers, status, code, message] of refused) {
    const res = await get(node, '/echo', headers);
    assert.equal(res.status, status, `${name}: ${res.body}`);
    assert.equal(errorOf(res), code, name);
    assert.match((res.json() as { message: string }).message, message, name);
    if (status === 401) assert.match(String(res.headers['www-authenticate']), /^Bearer/, name);
  }
  assert.equal(sidecar.requests.length, 0, 'nothing refused was relayed');

  const allowed: [string, Record<string, unknown>][] = [
    ['exact', { sub: 'alice', tunnels: ['other', PATH] }],
    ['prefix*', { sub: 'alice', tunnels: ['team-alpha*'] }],
    ['*', { sub: 'alice', tunnels: ['*'] }],
    ['admin', { sub: 'root', roles: ['admin'] }],
  ];
  for (const [name, claims] of allowed) assert.equal((await get(node, '/echo', { authorization: `Bearer ${node.token(claims)}` })).status, 200, name);
  assert.equal(sidecar.requests.length, allowed.length);
});

test('the token may come in the Authorization header, the query or the cookie; what the gate read never reaches the back end', async (t) => {
  const { node } = await setup(t);
  const token = node.token({ sub: 'alice', tunnels: [PATH] });

  const byHeader = echoOf(await get(node, '/echo?a=1', { authorization: `Bearer ${token}`, cookie: 'theme=dark' }));
  assert.equal(byHeader.headers.authorization, undefined, 'the Bearer token that was the gate token is removed');
  assert.equal(byHeader.query, 'a=1');
  assert.equal(byHeader.headers.cookie, 'theme=dark', 'a Cookie header without the gate cookie is relayed as sent');

  const byQuery = echoOf(await get(node, `/echo?a=1&token=${token}&b=%20x&empty=&a=2&flag`, { authorization: 'Basic dXNlcjpwdw==' }));
  assert.equal(byQuery.query, 'a=1&b=%20x&empty=&a=2&flag', 'only token is removed; the rest byte for byte, in order');
  assert.equal(byQuery.headers.authorization, 'Basic dXNlcjpwdw==', "the back end's own Authorization passes");
  const encoded = echoOf(await get(node, `/echo?%74oken=${token}&z=1`));
  assert.equal(encoded.query, 'z=1', 'a percent-encoded spelling of token is the same parameter');

  const byCookie = echoOf(await get(node, '/echo?q=1', { cookie: `a=1; switchboard_token=${token}; b="two words"`, authorization: 'Bearer backend-own-token' }));
  assert.equal(byCookie.headers.cookie, 'a=1; b="two words"', 'the other cookies stay, in order');
  assert.equal(byCookie.headers.authorization, 'Bearer backend-own-token', 'the cookie is read before Authorization, which then passes untouched');
  assert.equal(byCookie.query, 'q=1');
  const onlyCookie = echoOf(await get(node, '/echo', { cookie: `switchboard_token=${token}` }));
  assert.equal(onlyCookie.headers.cookie, undefined, 'a Cookie header left empty is dropped');

  // The audit records name the user, never the token, the query or an address.
  await eventually(() => assert.equal(node.logs.filter((r) => r.event === 'tunnel_request').length, 5));
  for (const record of node.logs.filter((r) => r.event === 'tunnel_request')) {
    assert.equal(record.user, 'alice');
    assert.equal(record.status, 200);
    const line = JSON.stringify(record);
    for (const secret of ['a=1', 'token', '127.0.0.1', 'dXNlcjpwdw']) assert.ok(!line.includes(secret), `${secret} in ${line}`);
  }
  assert.ok(!node.logs.some((r) => JSON.stringify(r).includes(token)), 'the token is in no log record');
});

test('a custom TUNNEL_AUTH_COOKIE is the cookie read and removed; the default name then passes as any cookie', async (t) => {
  const { node } = await setup(t, { TUNNEL_PUBLIC_AUTH: 'required', TUNNEL_AUTH_COOKIE: 'gate' });
  const token = node.token({ sub: 'alice', tunnels: [PATH] });
  const echoed = echoOf(await get(node, '/echo', { cookie: `switchboard_token=x; gate=${token}` }));
  assert.equal(echoed.headers.cookie, 'switchboard_token=x');
  assert.equal((await get(node, '/echo', { cookie: `switchboard_token=${token}` })).status, 401);
});

test('the WebSocket upgrade follows the same rules: 401 and 403 at the upgrade, 101 with a good token, the gate token not relayed', async (t) => {
  const { node, sidecar } = await setup(t);
  const token = node.token({ sub: 'alice', tunnels: ['team-*'] });
  assert.equal((await upgrade(t, node, '/ws')).status, 401);
  assert.equal((await upgrade(t, node, '/ws', { authorization: 'Bearer nonsense' })).status, 401);
  assert.equal((await upgrade(t, node, '/ws', { authorization: `Bearer ${node.token({ sub: 'alice', exp: Math.floor(Date.now() / 1000) - 60 })}` })).status, 401);
  assert.equal((await upgrade(t, node, '/ws', { authorization: `Bearer ${node.token({ sub: 'alice' })}` })).status, 403);
  assert.equal((await upgrade(t, node, '/ws', { authorization: `Bearer ${node.token({ sub: 'alice', tunnels: ['team-beta'] })}` })).status, 403);
  assert.ok(!sidecar.events.some(([, , , event]) => event === 'ws_check'), 'a refused upgrade asks no sidecar');

  const connects = () => sidecar.events.filter(([, , , event]) => event === 'ws_connect').map(([, , , , payload]) => payload as { query_string: string; headers: Record<string, string> });
  for (const [how, path, headers] of [
    ['query', `/ws?room=1&token=${token}`, {}],
    ['header', '/ws?room=1', { authorization: `Bearer ${token}` }],
    ['cookie', '/ws?room=1', { cookie: `switchboard_token=${token}; theme=dark` }],
  ] as const) {
    const opened = await upgrade(t, node, path, headers);
    assert.equal(opened.status, 101, how);
    const ws = opened.ws as WebSocket;
    const reply = new Promise<string>((resolve) => ws.once('message', (data: Buffer) => resolve(data.toString())));
    ws.send('hi');
    assert.equal(await reply, 'echo:hi', how);
    ws.close();
  }
  const relayed = connects();
  assert.equal(relayed.length, 3);
  for (const connect of relayed) {
    assert.equal(connect.query_string, 'room=1');
    assert.equal(connect.headers.authorization, undefined);
    assert.ok(!JSON.stringify(connect).includes(token));
  }
  assert.equal(relayed[2]?.headers.cookie, 'theme=dark');
  await eventually(() => assert.equal(node.logs.filter((r) => r.event === 'tunnel_websocket').length, 3));
  assert.ok(node.logs.filter((r) => r.event === 'tunnel_websocket').every((r) => r.user === 'alice'));
});

test('open (the default): no token needed, anonymous, nothing removed', async (t) => {
  const { node } = await setup(t, {});
  const echoed = echoOf(await get(node, '/echo?token=abc&a=1', { authorization: 'Bearer some.backend.token', cookie: 'switchboard_token=x; b=2' }));
  assert.equal(echoed.query, 'token=abc&a=1');
  assert.equal(echoed.headers.authorization, 'Bearer some.backend.token');
  assert.equal(echoed.headers.cookie, 'switchboard_token=x; b=2');
  assert.equal((await upgrade(t, node, '/ws')).status, 101);
  await eventually(() => assert.equal(node.logs.filter((r) => r.event === 'tunnel_request').length, 1));
  assert.equal(node.logs.find((r) => r.event === 'tunnel_request')?.user, undefined);
});

test('per user: public requests count against RATE_LIMIT_POINTS; over it 429 rate_limited with retry-after', async (t) => {
  const { node, sidecar } = await setup(t, { TUNNEL_PUBLIC_AUTH: 'required', RATE_LIMIT_POINTS: '2', RATE_LIMIT_DURATION_S: '30' });
  const alice = { authorization: `Bearer ${node.token({ sub: 'alice', tunnels: [PATH] })}` };
  assert.equal((await get(node, '/echo', alice)).status, 200);
  assert.equal((await get(node, '/echo', alice)).status, 200);
  const limited = await get(node, '/echo', alice);
  assert.equal(limited.status, 429);
  assert.equal(errorOf(limited), 'rate_limited');
  const retryAfter = Number(limited.headers['retry-after']);
  assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 30, `retry-after ${String(limited.headers['retry-after'])}`);
  assert.equal((await upgrade(t, node, '/ws', alice)).status, 429, 'the WebSocket upgrade counts too');
  assert.equal((await get(node, '/echo', { authorization: `Bearer ${node.token({ sub: 'bob', tunnels: [PATH] })}` })).status, 200, 'another user has a budget of their own');
  assert.equal(sidecar.requests.length, 3);
  assert.equal(await rateLimitRejections(node), 2);
});

test('per IP: with CONNECT_RATE_PER_IP each public request draws on the address budget; over it 429', async (t) => {
  const { node } = await setup(t, { CONNECT_RATE_PER_IP: '2' });
  // At once, so the three fall in one 1 s window.
  const results = await Promise.all([1, 2, 3].map(() => get(node, '/echo')));
  assert.deepEqual(results.map((r) => r.status).sort(), [200, 200, 429]);
  const limited = results.find((r) => r.status === 429) as HttpResult;
  assert.equal(errorOf(limited), 'rate_limited');
  assert.equal(limited.headers['retry-after'], '1');
  assert.equal(await rateLimitRejections(node), 1);
});
