// `switchboard tunnel`'s WebSocket relay against a fake Telephone server and a
// real `ws` back end: the ws_check probe and the subprotocol the back end
// picks, frames of every opcode both ways byte for byte, close codes both
// ways, refusals, and the back ends closed when the tunnel socket goes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { test, type TestContext } from 'node:test';
import type WebSocket from 'ws';
import { eventually } from '../helpers/eventually';
import { FakeTelephoneServer } from '../helpers/fake-telephone-server';
import { startSidecar, startWsBackend } from '../helpers/sidecar';

interface BackendSide {
  ws: WebSocket;
  req: IncomingMessage;
  messages: { data: Buffer; isBinary: boolean }[];
  pings: Buffer[];
  pongs: Buffer[];
  closed: { code: number; reason: string } | undefined;
}

/** A back end that picks `wamp` when offered, refuses /nope with 404, and records everything. */
async function backend(t: TestContext) {
  const sides: BackendSide[] = [];
  const { wss, url } = await startWsBackend(t, {
    handleProtocols: (protocols) => (protocols.has('wamp') ? 'wamp' : false),
    verifyClient: (info: { req: IncomingMessage }, done: (ok: boolean, status?: number) => void) => done(!(info.req.url ?? '').startsWith('/nope'), 404),
    autoPong: true,
  });
  wss.on('connection', (ws, req) => {
    const side: BackendSide = { ws, req, messages: [], pings: [], pongs: [], closed: undefined };
    sides.push(side);
    ws.on('message', (data: Buffer, isBinary) => {
      side.messages.push({ data, isBinary });
      if (!isBinary && data.toString() === 'bye') ws.close(4000, 'backend bye');
      else ws.send(isBinary ? data : `echo:${data.toString()}`, { binary: isBinary });
    });
    ws.on('ping', (data: Buffer) => side.pings.push(data));
    ws.on('pong', (data: Buffer) => side.pongs.push(data));
    ws.on('close', (code, reason) => (side.closed = { code, reason: reason.toString() }));
  });
  return { sides, url };
}

const headers = { origin: 'http://example.com', 'sec-websocket-protocol': 'graphql-ws, wamp', cookie: 'sid=1', 'x-request-id': 'r-1' };

test('ws_check probes the back end: the protocol it picks, or not supported with a reason', async (t) => {
  const server = await FakeTelephoneServer.start(t);
  const back = await backend(t);
  await startSidecar(t, server, back.url);
  const socket = await server.joined(0);
  const ok = await socket.wsCheck('/ws', headers, 'room=1');
  assert.equal(ok.supported, true);
  assert.equal(ok.protocol, 'wamp', 'the back end chose wamp among graphql-ws, wamp');
  // The probe reached the back end with the path, the query and the forwarded headers, and was closed normally.
  const probe = await eventually(() => {
    const side = back.sides[0];
    assert.ok(side?.closed !== undefined, 'the probe is still open');
    return side;
  });
  assert.equal(probe.req.url, '/ws?room=1');
  assert.equal(probe.req.headers.origin, 'http://example.com');
  assert.equal(probe.req.headers.cookie, 'sid=1');
  assert.deepEqual(probe.closed, { code: 1000, reason: 'probe' });

  const refused = await socket.wsCheck('/nope', headers);
  assert.deepEqual({ supported: refused.supported, reason: refused.reason }, { supported: false, reason: 'backend_status_404' });
  const none = await socket.wsCheck('/ws', { 'sec-websocket-protocol': 'graphql-ws' });
  assert.equal(none.supported, false, 'the back end accepts none of the offered protocols');
});

test('a relayed WebSocket: text, binary, pings and pongs both ways, byte for byte', async (t) => {
  const server = await FakeTelephoneServer.start(t);
  const back = await backend(t);
  await startSidecar(t, server, back.url);
  const socket = await server.joined(0);
  const id = socket.wsConnect('/ws', headers, 'room=1');
  const connected = await socket.wsEvent(id, 'ws_connected');
  assert.equal(connected.protocol, 'wamp');
  const side = await eventually(() => back.sides[0] ?? assert.fail('no back-end connection'));
  assert.deepEqual(side.req.headers['sec-websocket-protocol']?.split(/, */), ['graphql-ws', 'wamp'], 'the offered protocols, in order');
  assert.equal(side.req.headers['x-request-id'], 'r-1');

  socket.wsFrame(id, 'text', 'hi');
  const echo = await socket.wsEvent(id, 'ws_frame', (e) => e.opcode === 'text');
  assert.equal(echo.data.toString(), 'echo:hi');

  const bytes = randomBytes(100 * 1024);
  socket.wsFrame(id, 'binary', bytes);
  const back1 = await socket.wsEvent(id, 'ws_frame', (e) => e.opcode === 'binary');
  assert.ok(back1.data.equals(bytes), 'binary frame changed on the way');
  assert.deepEqual(side.messages.map((m) => m.isBinary), [false, true]);
  assert.ok(side.messages[1]!.data.equals(bytes));

  // The public client's ping reaches the back end; the back end's pong comes back as a frame.
  socket.wsFrame(id, 'ping', 'p1');
  await eventually(() => assert.deepEqual(side.pings.map(String), ['p1']));
  const pong = await socket.wsEvent(id, 'ws_frame', (e) => e.opcode === 'pong');
  assert.equal(pong.data.toString(), 'p1');
  // The back end's ping reaches the server as a frame, and is not answered by the sidecar itself.
  side.ws.ping('p2');
  const ping = await socket.wsEvent(id, 'ws_frame', (e) => e.opcode === 'ping');
  assert.equal(ping.data.toString(), 'p2');
  socket.wsFrame(id, 'pong', 'p2');
  await eventually(() => assert.ok(side.pongs.length > 0));
  // One more round trip on the same connection: an automatic pong sent before the relayed one would have arrived by now.
  socket.wsFrame(id, 'text', 'after');
  await socket.wsEvent(id, 'ws_frame', (e) => e.data.toString() === 'echo:after');
  assert.deepEqual(side.pongs.map(String), ['p2'], 'the sidecar answered the back end\'s ping itself');
});

test('close codes both ways: the public client closes the back end; the back end closing is told with its code', async (t) => {
  const server = await FakeTelephoneServer.start(t);
  const back = await backend(t);
  await startSidecar(t, server, back.url);
  const socket = await server.joined(0);

  const a = socket.wsConnect('/ws', headers);
  await socket.wsEvent(a, 'ws_connected');
  socket.wsClose(a, 4001, 'client bye');
  const sideA = back.sides[0]!;
  await eventually(() => assert.deepEqual(sideA.closed, { code: 4001, reason: 'client bye' }));

  const b = socket.wsConnect('/ws', headers);
  await socket.wsEvent(b, 'ws_connected');
  socket.wsFrame(b, 'text', 'bye');
  const closed = await socket.wsEvent(b, 'ws_closed');
  assert.deepEqual({ code: closed.code, reason: closed.reason }, { code: 4000, reason: 'backend bye' });

  // No ws_closed for the socket the public client closed: nothing is owed after ws_close.
  assert.equal(socket.wsEvents.filter((e) => e.connectionId === a && e.event === 'ws_closed').length, 0);
});

test('ws_connect to a path the back end refuses: ws_error', async (t) => {
  const server = await FakeTelephoneServer.start(t);
  const back = await backend(t);
  await startSidecar(t, server, back.url);
  const socket = await server.joined(0);
  const id = socket.wsConnect('/nope', headers);
  const error = await socket.wsEvent(id, 'ws_error');
  assert.equal(error.reason, 'backend_status_404');
});

test('the tunnel socket dropping closes the relayed back-end sockets with 1001', async (t) => {
  const server = await FakeTelephoneServer.start(t);
  const back = await backend(t);
  await startSidecar(t, server, back.url);
  const socket = await server.joined(0);
  const id = socket.wsConnect('/ws', headers);
  await socket.wsEvent(id, 'ws_connected');
  socket.ws.terminate();
  await eventually(() => assert.equal(back.sides[0]?.closed?.code, 1001));
  await server.joined(1);
});
