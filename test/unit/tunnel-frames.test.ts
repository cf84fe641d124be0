// The sidecar protocol codec against the frames captured from the real Vera
// Telephone client (shared/TUNNEL-PROTOCOL.md): what it sends decodes to what
// it means, and what the server sends encodes byte for byte as captured.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  decodeProxyResponse,
  decodeTunnelFrame,
  decodeWsCheckResult,
  decodeWsEvent,
  encodeJoinReply,
  encodeProxyRequest,
  encodePush,
  encodeReply,
  encodeWsClose,
  encodeWsFrame,
  encodeWsOpen,
  heartbeatTs,
  requestedExtensions,
  type TunnelFrame,
} from '../../src/protocol/tunnel-frames';
import { PATH_ID_PATTERN } from '../../src/protocol/names';

const ID = '550e8400-e29b-41d4-a716-446655440000';
const topic = `telephone:${ID}`;

function frame(text: string): TunnelFrame {
  const decoded = decodeTunnelFrame(text);
  assert.ok(decoded !== undefined, text);
  return decoded;
}

test('join, heartbeat and refresh: the captured client frames decode, and the replies encode as captured', () => {
  const join = frame(`["1","1","telephone:${ID}","phx_join",{}]`);
  assert.deepEqual(join, { joinRef: '1', ref: '1', topic, event: 'phx_join', payload: {} });
  assert.deepEqual(requestedExtensions(join.payload), []);
  assert.equal(
    encodeJoinReply('1', ID, 3600),
    `["1","1","telephone:${ID}","phx_reply",{"status":"ok","response":{"status":"ok","path":"/call/${ID}","expires_in":3600}}]`,
  );
  assert.equal(
    encodeReply('1', '1', 'telephone:other', 'error', { reason: 'path_id_mismatch' }),
    `["1","1","telephone:other","phx_reply",{"status":"error","response":{"reason":"path_id_mismatch"}}]`,
  );
  // Switchboard's own sidecar asks for extensions; unknown ones are not granted.
  assert.deepEqual(requestedExtensions(frame(`["1","1","${topic}","phx_join",{"extensions":["stream","compress","binary_body"]}]`).payload), ['binary_body', 'stream']);
  assert.equal(
    encodeJoinReply('1', ID, 3600, ['binary_body', 'stream']),
    `["1","1","${topic}","phx_reply",{"status":"ok","response":{"status":"ok","path":"/call/${ID}","expires_in":3600,"extensions":["binary_body","stream"]}}]`,
  );

  const beat = frame(`["7","7","${topic}","heartbeat",{"ts":1795310303}]`);
  assert.equal(beat.event, 'heartbeat');
  assert.equal(heartbeatTs(beat.payload), 1795310303);
  assert.equal(heartbeatTs(frame(`["8","8","${topic}","heartbeat",{}]`).payload), undefined);
  assert.equal(encodePush('1', ID, 'heartbeat_ack', { ts: 1795310303 }), `["1",null,"${topic}","heartbeat_ack",{"ts":1795310303}]`);
  assert.deepEqual(frame('["x","x","phoenix","heartbeat",{}]'), { joinRef: 'x', ref: 'x', topic: 'phoenix', event: 'heartbeat', payload: {} });
  assert.equal(encodeReply('x', 'x', 'phoenix', 'ok', {}), '["x","x","phoenix","phx_reply",{"status":"ok","response":{}}]');

  assert.equal(frame(`["13","13","${topic}","refresh_token",{}]`).event, 'refresh_token');
  assert.equal(
    encodeReply('1', '13', topic, 'ok', { token: 'eyJ.x.y', expires_in: 3600 }),
    `["1","13","${topic}","phx_reply",{"status":"ok","response":{"token":"eyJ.x.y","expires_in":3600}}]`,
  );
});

test('HTTP relay: proxy_req encodes as captured; proxy_res decodes, chunked or not', () => {
  assert.equal(
    encodeProxyRequest('1', ID, {
      requestId: '550e8400-e29b-41d4-a716-446655440001',
      method: 'POST',
      path: '/echo',
      queryString: 'a=1&b=2',
      headers: { 'content-type': 'application/json' },
      body: '{"name":"test"}',
    }),
    `["1",null,"${topic}","proxy_req",{"request_id":"550e8400-e29b-41d4-a716-446655440001","method":"POST","path":"/echo","query_string":"a=1&b=2","headers":{"content-type":"application/json"},"body":"{\\"name\\":\\"test\\"}"}]`,
  );
  const plain = frame(
    `["3","3","${topic}","proxy_res",{"request_id":"550e8400-e29b-41d4-a716-446655440001","status":201,"headers":{"Content-Type":"text/plain; charset=utf-8","Content-Length":"15"},"body":"{\\"name\\":\\"test\\"}","chunked":false}]`,
  );
  assert.deepEqual(decodeProxyResponse(plain.payload), {
    requestId: '550e8400-e29b-41d4-a716-446655440001',
    status: 201,
    headers: [
      ['Content-Type', 'text/plain; charset=utf-8'],
      ['Content-Length', '15'],
    ],
    body: '{"name":"test"}',
    base64: false,
  });
  const chunked = frame(
    `["4","4","${topic}","proxy_res",{"request_id":"550e8400-e29b-41d4-a716-446655440002","status":200,"headers":{"Content-Length":"50"},"body":"","chunked":true,"chunks":["0123456789012345","6789012345678901","2345678901234567","89"]}]`,
  );
  assert.deepEqual(decodeProxyResponse(chunked.payload), {
    requestId: '550e8400-e29b-41d4-a716-446655440002',
    status: 200,
    headers: [['Content-Length', '50']],
    body: '01234567890123456789012345678901234567890123456789',
    base64: false,
  });
  // status defaults to 200; chunked with no chunks falls back to body; binary_body marks base64.
  assert.deepEqual(decodeProxyResponse(frame(`["5","5","${topic}","proxy_res",{"request_id":"r","body":"aGk=","chunked":true,"chunks":[],"body_encoding":"base64"}]`).payload), {
    requestId: 'r',
    status: 200,
    headers: [],
    body: 'aGk=',
    base64: true,
  });
  for (const bad of ['{}', '{"request_id":""}', '{"request_id":"r","status":"200"}', '{"request_id":"r","status":42}'])
    assert.equal(decodeProxyResponse(frame(`["6","6","${topic}","proxy_res",${bad}]`).payload), undefined, bad);
});

test('WebSocket relay: the captured exchange encodes and decodes exactly', () => {
  const check = 'c0ffee00-0000-4000-8000-000000000001';
  const conn = '7a1c0000-0000-4000-8000-000000000001';
  const open = { path: '/ws', queryString: 'room=1', headers: { origin: 'http://example.com', 'sec-websocket-protocol': 'graphql-ws, wamp' } };
  assert.equal(
    encodeWsOpen('1', ID, 'ws_check', { id: check, ...open }),
    `["1",null,"${topic}","ws_check",{"check_id":"${check}","headers":{"origin":"http://example.com","sec-websocket-protocol":"graphql-ws, wamp"},"path":"/ws","query_string":"room=1"}]`,
  );
  assert.deepEqual(decodeWsCheckResult(frame(`["10","10","${topic}","ws_check_result",{"check_id":"${check}","protocol":"graphql-ws","supported":true}]`).payload), {
    checkId: check,
    supported: true,
    protocol: 'graphql-ws',
  });
  assert.equal(
    encodeWsOpen('1', ID, 'ws_connect', { id: conn, ...open }),
    `["1",null,"${topic}","ws_connect",{"connection_id":"${conn}","headers":{"origin":"http://example.com","sec-websocket-protocol":"graphql-ws, wamp"},"path":"/ws","query_string":"room=1"}]`,
  );
  const connected = frame(`["12","12","${topic}","ws_connected",{"connection_id":"${conn}","protocol":"graphql-ws"}]`);
  assert.deepEqual(decodeWsEvent(connected.event, connected.payload), { event: 'ws_connected', connectionId: conn, protocol: 'graphql-ws' });
  assert.equal(encodeWsFrame('1', ID, conn, 'text', Buffer.from('hi')), `["1",null,"${topic}","ws_frame",{"connection_id":"${conn}","data":"aGk=","opcode":"text"}]`);
  const echoed = frame(`["15","15","${topic}","ws_frame",{"connection_id":"${conn}","data":"ZWNobzpoaQ==","opcode":"text"}]`);
  assert.deepEqual(decodeWsEvent(echoed.event, echoed.payload), { event: 'ws_frame', connectionId: conn, opcode: 'text', data: Buffer.from('echo:hi') });
  const closed = frame(`["17","17","${topic}","ws_closed",{"code":4000,"connection_id":"${conn}","reason":"backend bye"}]`);
  assert.deepEqual(decodeWsEvent(closed.event, closed.payload), { event: 'ws_closed', connectionId: conn, code: 4000, reason: 'backend bye' });
  assert.equal(encodeWsClose('1', ID, conn, 1000, 'bye'), `["1",null,"${topic}","ws_close",{"code":1000,"connection_id":"${conn}","reason":"bye"}]`);
  const failed = frame(`["18","18","${topic}","ws_error",{"connection_id":"${conn}","reason":"dial tcp: refused"}]`);
  assert.deepEqual(decodeWsEvent(failed.event, failed.payload), { event: 'ws_error', connectionId: conn, reason: 'dial tcp: refused' });
  // Not padded standard base64, an unknown opcode, no connection: not an event.
  for (const payload of [`{"connection_id":"${conn}","data":"aGk","opcode":"text"}`, `{"connection_id":"${conn}","data":"aGk=","opcode":"close"}`, '{"data":"aGk=","opcode":"text"}'])
    assert.equal(decodeWsEvent('ws_frame', frame(`["19","19","${topic}","ws_frame",${payload}]`).payload), undefined, payload);
});

test('anything that is not a Phoenix V2 frame is rejected, never thrown', () => {
  for (const text of ['', 'null', '{}', '[]', '["1","1","t","e"]', '["1","1","t","e",{},1]', '[1,"1","t","e",{}]', '["1",2,"t","e",{}]', '["1","1",3,"e",{}]', '["1","1","t",null,{}]', '["1","1","t","e",[]]', '["1","1","t","e",null]', '["1","1","t","e","x"]', '[null,null,"t","e",{}'])
    assert.equal(decodeTunnelFrame(text), undefined, text);
  assert.deepEqual(decodeTunnelFrame('[null,null,"t","e",{"__proto__":{"x":1}}]')?.payload, JSON.parse('{"__proto__":{"x":1}}'));
  fc.assert(fc.property(fc.string(), (s) => void decodeTunnelFrame(s)));
  fc.assert(
    fc.property(fc.jsonValue(), (value) => {
      const decoded = decodeTunnelFrame(JSON.stringify(value));
      if (decoded === undefined) return;
      void decodeProxyResponse(decoded.payload);
      void decodeWsCheckResult(decoded.payload);
      for (const event of ['ws_connected', 'ws_frame', 'ws_closed', 'ws_error']) void decodeWsEvent(event, decoded.payload);
    }),
  );
});

test('path ids: UUIDs and the documented characters only', () => {
  for (const ok of [ID, 'my-service', 'a.b_c', 'x'.repeat(128)]) assert.ok(PATH_ID_PATTERN.test(ok), ok);
  for (const bad of ['', 'x'.repeat(129), 'a/b', 'a:b', '..%2f', 'a b', 'é']) assert.ok(!PATH_ID_PATTERN.test(bad), bad);
});
