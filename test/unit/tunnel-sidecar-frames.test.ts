// The sidecar's half of the codec and the `stream` events: what the server's
// encoders write, the sidecar's decoders read back exactly; what the sidecar
// writes reads like the captured Telephone frames (shared/TUNNEL-PROTOCOL.md)
// and decodes with the server's decoders; nothing malformed throws.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  decodeProxyResponse,
  decodeTunnelFrame,
  decodeWsCheckResult,
  decodeWsEvent,
  encodeProxyRequest,
  encodeTunnelFrame,
  encodeWsClose,
  encodeWsFrame,
  encodeWsOpen,
  type Payload,
} from '../../src/protocol/tunnel-frames';
import {
  decodeJoinGrant,
  decodeRefreshed,
  decodeReply,
  decodeServerPush,
  proxyResponsePayload,
  wsCheckResultPayload,
  wsClosedPayload,
  wsConnectedPayload,
  wsFramePayload,
} from '../../src/protocol/tunnel-sidecar-frames';
import {
  decodeBinaryChunk,
  decodeStreamEvent,
  encodeBinaryChunk,
  headerObject,
  streamEventPayload,
  type ChunkEvent,
  type StreamEvent,
} from '../../src/protocol/tunnel-stream-frames';

const ID = '550e8400-e29b-41d4-a716-446655440000';
const topic = `telephone:${ID}`;
const REQ = '550e8400-e29b-41d4-a716-446655440001';

function payloadOf(text: string): Payload {
  const frame = decodeTunnelFrame(text);
  assert.ok(frame !== undefined, text);
  return frame.payload;
}

test('proxy_req from the server decodes to bytes: baseline text, base64, streamed', () => {
  const base = { requestId: REQ, method: 'POST' as const, path: '/echo', queryString: 'a=1&b=2', headers: { 'content-type': 'application/json' } };
  const baseline = decodeServerPush('proxy_req', payloadOf(encodeProxyRequest('1', ID, { ...base, body: '{"name":"tést"}' })));
  assert.deepEqual(baseline, {
    event: 'proxy_req',
    request: { ...base, headers: [['content-type', 'application/json']], body: Buffer.from('{"name":"tést"}'), streamed: false },
  });
  const bytes = Buffer.from([0, 255, 128, 10]);
  const binary = decodeServerPush('proxy_req', payloadOf(encodeProxyRequest('1', ID, { ...base, body: bytes.toString('base64'), bodyEncoding: 'base64' })));
  assert.ok(binary?.event === 'proxy_req');
  assert.deepEqual(binary.request.body, bytes);
  const streamed = decodeServerPush('proxy_req', payloadOf(encodeProxyRequest('1', ID, { ...base, body: '', bodyEncoding: 'base64', streamed: true })));
  assert.ok(streamed?.event === 'proxy_req');
  assert.equal(streamed.request.streamed, true);
  assert.equal(streamed.request.body.length, 0);
  // base64 that is not padded standard base64, no request id, no path: not a request.
  for (const bad of [
    { request_id: REQ, method: 'GET', path: '/', body: 'a b', body_encoding: 'base64' },
    { method: 'GET', path: '/', body: '' },
    { request_id: REQ, method: 'GET', body: '' },
  ])
    assert.equal(decodeServerPush('proxy_req', bad), undefined, JSON.stringify(bad));
});

test('proxy_res as the sidecar writes it reads like Telephone and decodes with the server decoder', () => {
  const text = encodeTunnelFrame(
    '3',
    '3',
    topic,
    'proxy_res',
    proxyResponsePayload({ requestId: REQ, status: 201, headers: { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': '15' }, body: '{"name":"test"}', base64: false }),
  );
  assert.equal(
    text,
    `["3","3","${topic}","proxy_res",{"request_id":"${REQ}","status":201,"headers":{"Content-Type":"text/plain; charset=utf-8","Content-Length":"15"},"body":"{\\"name\\":\\"test\\"}","chunked":false}]`,
  );
  const binary = proxyResponsePayload({ requestId: REQ, status: 200, headers: {}, body: 'AP8=', base64: true });
  assert.deepEqual(decodeProxyResponse(binary as Payload), { requestId: REQ, status: 200, headers: [], body: 'AP8=', base64: true });
});

test('the WebSocket exchange: the server pushes decode; the sidecar writes the captured frames', () => {
  const check = 'c0ffee00-0000-4000-8000-000000000001';
  const conn = '7a1c0000-0000-4000-8000-000000000001';
  const headers = { origin: 'http://example.com', 'sec-websocket-protocol': 'graphql-ws, wamp' };
  const open = { path: '/ws', queryString: 'room=1', headers: Object.entries(headers) };
  assert.deepEqual(decodeServerPush('ws_check', payloadOf(encodeWsOpen('1', ID, 'ws_check', { id: check, path: '/ws', queryString: 'room=1', headers }))), {
    event: 'ws_check',
    open: { id: check, ...open },
  });
  assert.deepEqual(decodeServerPush('ws_connect', payloadOf(encodeWsOpen('1', ID, 'ws_connect', { id: conn, path: '/ws', queryString: 'room=1', headers }))), {
    event: 'ws_connect',
    open: { id: conn, ...open },
  });
  assert.deepEqual(decodeServerPush('ws_frame', payloadOf(encodeWsFrame('1', ID, conn, 'binary', Buffer.from([1, 2, 255])))), {
    event: 'ws_frame',
    connectionId: conn,
    opcode: 'binary',
    data: Buffer.from([1, 2, 255]),
  });
  assert.deepEqual(decodeServerPush('ws_close', payloadOf(encodeWsClose('1', ID, conn, 4001, 'bye'))), { event: 'ws_close', connectionId: conn, code: 4001, reason: 'bye' });

  const written = (ref: string, event: string, payload: object) => encodeTunnelFrame(ref, ref, topic, event, payload);
  assert.equal(
    written('10', 'ws_check_result', wsCheckResultPayload(check, { supported: true, protocol: 'graphql-ws' })),
    `["10","10","${topic}","ws_check_result",{"check_id":"${check}","protocol":"graphql-ws","supported":true}]`,
  );
  assert.equal(written('12', 'ws_connected', wsConnectedPayload(conn, 'graphql-ws')), `["12","12","${topic}","ws_connected",{"connection_id":"${conn}","protocol":"graphql-ws"}]`);
  assert.equal(written('15', 'ws_frame', wsFramePayload(conn, 'text', Buffer.from('echo:hi'))), `["15","15","${topic}","ws_frame",{"connection_id":"${conn}","data":"ZWNobzpoaQ==","opcode":"text"}]`);
  assert.equal(written('17', 'ws_closed', wsClosedPayload(conn, 4000, 'backend bye')), `["17","17","${topic}","ws_closed",{"code":4000,"connection_id":"${conn}","reason":"backend bye"}]`);
  assert.deepEqual(decodeWsCheckResult(wsCheckResultPayload(check, { supported: false, reason: 'backend_status_404' }) as Payload), {
    checkId: check,
    supported: false,
    reason: 'backend_status_404',
  });
  assert.deepEqual(decodeWsEvent('ws_connected', wsConnectedPayload(conn, '') as Payload), { event: 'ws_connected', connectionId: conn });
  // A view into a larger buffer encodes only its own bytes.
  const view = Buffer.from('xxhixx').subarray(2, 4);
  assert.deepEqual(wsFramePayload(conn, 'text', view), { connection_id: conn, data: 'aGk=', opcode: 'text' });
});

test('stream events encode and decode both ways', () => {
  const events: StreamEvent[] = [
    { event: 'proxy_req_chunk', requestId: REQ, seq: 0, data: Buffer.from([0, 1, 2]) },
    { event: 'proxy_res_chunk', requestId: REQ, seq: 7, data: Buffer.alloc(0) },
    { event: 'proxy_req_end', requestId: REQ },
    { event: 'proxy_res_end', requestId: REQ },
    { event: 'proxy_cancel', requestId: REQ },
    { event: 'proxy_res_start', requestId: REQ, status: 206, headers: [['Content-Type', 'video/mp4']] },
    { event: 'proxy_res_error', requestId: REQ, reason: 'backend_error' },
    { event: 'proxy_credit', requestId: REQ, bytes: 65536 },
  ];
  for (const e of events) assert.deepEqual(decodeStreamEvent(e.event, JSON.parse(JSON.stringify(streamEventPayload(e))) as Payload), e, e.event);
  assert.equal(JSON.stringify(streamEventPayload(events[0]!)), `{"request_id":"${REQ}","seq":0,"data":"AAEC"}`);
  for (const [event, payload] of [
    ['proxy_res_chunk', { request_id: REQ, seq: -1, data: '' }],
    ['proxy_res_chunk', { request_id: REQ, seq: 0, data: 'AAE' }],
    ['proxy_credit', { request_id: REQ, bytes: 0 }],
    ['proxy_res_start', { request_id: REQ, status: 42 }],
    ['proxy_res_end', {}],
    ['proxy_res', { request_id: REQ }],
  ] as const)
    assert.equal(decodeStreamEvent(event, payload), undefined, `${event} ${JSON.stringify(payload)}`);
  // Only the server's stream events are pushes; a proxy_res_* pushed to a sidecar is not.
  assert.deepEqual(decodeServerPush('proxy_credit', { request_id: REQ, bytes: 10 }), { event: 'proxy_credit', requestId: REQ, bytes: 10 });
  assert.equal(decodeServerPush('proxy_res_end', { request_id: REQ }), undefined);
  assert.deepEqual(headerObject([['A', '1'], ['A', '2'], ['b', '3']]), Object.assign(Object.create(null) as object, { A: '1, 2', b: '3' }));
});

test('binary_frames: a chunk is one binary message with kind, seq and request_id before the raw bytes', () => {
  const chunk: ChunkEvent = { event: 'proxy_res_chunk', requestId: 'r1', seq: 258, data: Buffer.from([0xff, 0, 7]) };
  const frame = encodeBinaryChunk(chunk);
  assert.deepEqual([...frame], [2, 0, 0, 1, 2, 2, 0x72, 0x31, 0xff, 0, 7]);
  assert.deepEqual(decodeBinaryChunk(frame), chunk);
  const empty: ChunkEvent = { event: 'proxy_req_chunk', requestId: REQ, seq: 0, data: Buffer.alloc(0) };
  assert.deepEqual(decodeBinaryChunk(encodeBinaryChunk(empty)), empty);
  // A view into a larger buffer (how ws and uWS hand messages over) decodes the same.
  const inside = Buffer.concat([Buffer.from('xx'), frame]).subarray(2);
  assert.deepEqual(decodeBinaryChunk(inside), chunk);
  for (const bad of [
    [],
    [2, 0, 0, 0, 0, 0], // no request_id
    [3, 0, 0, 0, 0, 1, 0x61], // unknown kind
    [0, 0, 0, 0, 0, 1, 0x61],
    [2, 0, 0, 0, 0, 5, 0x61], // request_id longer than the message
  ])
    assert.equal(decodeBinaryChunk(Uint8Array.from(bad)), undefined, JSON.stringify(bad));
  const tooBig = encodeBinaryChunk({ ...chunk, data: Buffer.alloc(64 * 1024 + 1) });
  assert.equal(decodeBinaryChunk(tooBig), undefined, 'over CHUNK_MAX_BYTES');
  assert.throws(() => encodeBinaryChunk({ ...chunk, requestId: '' }), RangeError);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => void decodeBinaryChunk(bytes)));
});

test('join and refresh replies: granted extensions, stream only with binary_body', () => {
  assert.deepEqual(decodeReply({ status: 'error', response: { reason: 'path_id_mismatch' } }), { ok: false, reason: 'path_id_mismatch' });
  const ok = decodeReply({ status: 'ok', response: { status: 'ok', path: `/call/${ID}`, expires_in: 3600, extensions: ['binary_body', 'stream', 'zip'] } });
  assert.ok(ok.ok);
  assert.deepEqual(decodeJoinGrant(ok.response), { extensions: new Set(['binary_body', 'stream']), expiresIn: 3600 });
  assert.deepEqual(decodeJoinGrant({ status: 'ok', path: '/call/x' }), { extensions: new Set(), expiresIn: undefined });
  assert.deepEqual(decodeJoinGrant({ extensions: ['stream'] }).extensions, new Set());
  assert.deepEqual(decodeRefreshed({ token: 'a.b.c', expires_in: 60 }), { token: 'a.b.c', expiresIn: 60 });
  assert.equal(decodeRefreshed({ expires_in: 60 }), undefined);
  assert.deepEqual(decodeServerPush('draining', { reconnect_after_ms: 0 }), { event: 'draining', reconnectAfterMs: 0 });
});

test('no payload makes a sidecar decoder throw', () => {
  const events = ['proxy_req', 'proxy_req_chunk', 'proxy_req_end', 'proxy_credit', 'proxy_cancel', 'ws_check', 'ws_connect', 'ws_frame', 'ws_close', 'draining', 'heartbeat_ack', 'x'];
  const payload = fc.dictionary(
    fc.constantFrom('request_id', 'check_id', 'connection_id', 'method', 'path', 'query_string', 'headers', 'body', 'body_encoding', 'streamed', 'seq', 'data', 'bytes', 'opcode', 'code', 'reason', 'reconnect_after_ms', 'status', 'extensions', 'expires_in', 'token', 'response'),
    fc.jsonValue(),
  );
  fc.assert(
    fc.property(fc.constantFrom(...events), payload, (event, p) => {
      decodeServerPush(event, p);
      decodeStreamEvent(event.replace('req', 'res'), p);
      decodeJoinGrant(p);
      decodeRefreshed(p);
      decodeReply(p);
    }),
  );
});
