// Properties of the tunnel codecs (shared/TUNNEL-PROTOCOL.md, docs/tunnel-extensions.md):
// Phoenix text frames and their payloads both ways, the `stream` events, binary
// chunks, and the relay envelopes between nodes. Every decoder's contract is
// "a typed value, or undefined": never a throw.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeRelayEnvelope, encodeRelayEnvelope, type RelayEnvelope } from '../../src/protocol/relay-envelope';
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
  EXTENSIONS,
  heartbeatTs,
  RELAYED_METHODS,
  requestedExtensions,
  type Payload,
  type WsOpcode,
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
  wsErrorPayload,
  wsFramePayload,
} from '../../src/protocol/tunnel-sidecar-frames';
import { CHUNK_MAX_BYTES, decodeBinaryChunk, decodeStreamEvent, encodeBinaryChunk, STREAM_EVENTS, streamEventPayload, type StreamEvent } from '../../src/protocol/tunnel-stream-frames';
import { anyId, anyText, bytes, FIELD_NAMES, headerName, headerValue, hostileString, jsonText, parsedShapedObject, shapedObjectText } from './arbitraries';
import { assertSameJson, fuzzProperty, isCanonicalBase64, isPlainObject, parsed, viaJson, type FuzzProperty } from './property';

const EVENTS = [
  'phx_join', 'phx_reply', 'phx_leave', 'heartbeat', 'proxy_req', 'proxy_res', 'ws_check', 'ws_check_result', 'ws_connect', 'ws_connected',
  'ws_frame', 'ws_close', 'ws_closed', 'ws_error', 'draining', 'heartbeat_ack', 'refresh_token', ...STREAM_EVENTS, 'nope', '__proto__', 'constructor',
];
const OPCODES: readonly WsOpcode[] = ['text', 'binary', 'ping', 'pong'];
const event = fc.oneof({ arbitrary: fc.constantFrom(...EVENTS), weight: 5 }, { arbitrary: hostileString, weight: 1 });
const payload: fc.Arbitrary<Payload> = parsedShapedObject(FIELD_NAMES.slice(8));
const ref = fc.oneof(fc.constant('null'), fc.constant('"1"'), jsonText);

const frameShaped = fc
  .tuple(ref, ref, fc.oneof(fc.constant('"telephone:abc"'), jsonText), event.map((e) => JSON.stringify(e)), fc.oneof({ arbitrary: shapedObjectText(FIELD_NAMES.slice(8)), weight: 4 }, { arbitrary: jsonText, weight: 1 }), fc.array(jsonText, { maxLength: 1 }))
  .map(([joinRef, r, topic, e, p, extra]) => `[${[joinRef, r, topic, e, p, ...extra].join(',')}]`);

function isRef(value: unknown): boolean {
  return value === null || typeof value === 'string';
}

/** decodeTunnelFrame: defined exactly for a 5-element array of two refs, two strings and an object; then the sub-decoders on its payload. */
function checkTunnelText(text: string): void {
  const frame = decodeTunnelFrame(text);
  const json = parsed(text);
  const value = json?.value;
  const valid = Array.isArray(value) && value.length === 5 && isRef(value[0]) && isRef(value[1]) && typeof value[2] === 'string' && typeof value[3] === 'string' && isPlainObject(value[4]);
  if (!valid) return assert.equal(frame, undefined);
  assert.ok(frame !== undefined);
  assertSameJson([frame.joinRef, frame.ref, frame.topic, frame.event, frame.payload], value);
  checkPayloadDecoders([frame.event, frame.payload]);
}

const isStringPair = (entry: unknown): boolean => Array.isArray(entry) && entry.length === 2 && typeof entry[0] === 'string' && typeof entry[1] === 'string';
const isStatus = (status: unknown): boolean => Number.isInteger(status) && (status as number) >= 100 && (status as number) <= 999;

/** Every decoder of a payload, both sides': never throws, and what it returns is well-formed and taken from the payload. */
function checkPayloadDecoders([name, p]: [string, Payload]): void {
  const response = decodeProxyResponse(p);
  if (response !== undefined) {
    assert.ok(response.requestId === p.request_id && response.requestId !== '' && isStatus(response.status));
    assert.ok(response.headers.every(isStringPair) && typeof response.body === 'string');
  }
  const check = decodeWsCheckResult(p);
  if (check !== undefined) assert.ok(check.checkId === p.check_id && check.supported === p.supported);
  const ws = decodeWsEvent(name, p);
  if (ws !== undefined) {
    assert.ok(ws.event === name && ws.connectionId === p.connection_id && ws.connectionId !== '');
    if (ws.event === 'ws_frame') assert.ok(OPCODES.includes(ws.opcode) && isCanonicalBase64(p.data, ws.data));
    if (ws.event === 'ws_closed') assert.ok(Number.isInteger(ws.code));
  }
  const extensions = requestedExtensions(p);
  assert.ok(extensions.every((e) => EXTENSIONS.includes(e)));
  const ts = heartbeatTs(p);
  assert.ok(ts === undefined || Number.isSafeInteger(ts));
  checkServerPush(name, p);
  const reply = decodeReply(p);
  assert.ok(reply.ok ? isPlainObject(reply.response) && p.status === 'ok' : typeof reply.reason === 'string');
  const grant = decodeJoinGrant(p);
  assert.ok([...grant.extensions].every((e) => EXTENSIONS.includes(e)) && (!grant.extensions.has('stream') || grant.extensions.has('binary_body')));
  assert.ok(grant.expiresIn === undefined || (Number.isSafeInteger(grant.expiresIn) && grant.expiresIn >= 0));
  const refreshed = decodeRefreshed(p);
  assert.ok(refreshed === undefined || (refreshed.token !== '' && refreshed.token === p.token));
  checkStreamEvent([name, p]);
}

function checkServerPush(name: string, p: Payload): void {
  const push = decodeServerPush(name, p);
  if (push === undefined) return;
  assert.equal(push.event, name);
  switch (push.event) {
    case 'proxy_req':
      return assert.ok(push.request.requestId !== '' && typeof push.request.path === 'string' && Buffer.isBuffer(push.request.body) && push.request.headers.every(isStringPair));
    case 'ws_check':
    case 'ws_connect':
      return assert.ok(push.open.id !== '' && push.open.path.startsWith('/') && push.open.headers.every(isStringPair));
    case 'ws_frame':
      return assert.ok(OPCODES.includes(push.opcode) && isCanonicalBase64(p.data, push.data));
    case 'ws_close':
      return assert.ok(Number.isInteger(push.code));
    case 'draining':
      return assert.ok(Number.isSafeInteger(push.reconnectAfterMs) && push.reconnectAfterMs >= 0);
    default:
      return;
  }
}

function checkStreamEvent([name, p]: [string, Payload]): void {
  const e = decodeStreamEvent(name, p);
  if (e === undefined) return;
  assert.ok(e.event === name && STREAM_EVENTS.has(name) && e.requestId === p.request_id && e.requestId !== '');
  if (e.event === 'proxy_req_chunk' || e.event === 'proxy_res_chunk') assert.ok(Number.isSafeInteger(e.seq) && e.seq >= 0 && isCanonicalBase64(p.data, e.data));
  if (e.event === 'proxy_credit') assert.ok(Number.isSafeInteger(e.bytes) && e.bytes > 0);
  if (e.event === 'proxy_res_start') assert.ok(isStatus(e.status) && e.headers.every(isStringPair));
}

// ── round trips ────────────────────────────────────────────────────────────

const headerEntriesArb = fc.uniqueArray(fc.tuple(headerName, headerValue), { maxLength: 6, selector: ([name]) => name });
const headerRecord = headerEntriesArb.map((entries) => Object.fromEntries(entries));
const opcode = fc.constantFrom(...OPCODES);
const joinRef = fc.string({ minLength: 1, maxLength: 10 });
const pathId = fc.stringMatching(/^[A-Za-z0-9_.-]{1,40}$/);
const path = fc.string({ maxLength: 40 }).map((rest) => `/${rest}`);

/** What the server pushes, decoded by the sidecar: the same request, open, frame or close. */
const serverPushRoundTrip = fc.oneof(
  fc
    .record({ j: joinRef, p: pathId, requestId: anyId, method: fc.constantFrom(...RELAYED_METHODS), path, queryString: fc.string(), headers: headerRecord, body: bytes, base64: fc.boolean(), streamed: fc.boolean() })
    .map((r) => () => {
      const text = r.base64 ? r.body.toString('base64') : r.body.toString('utf8');
      const frame = encodeProxyRequest(r.j, r.p, { requestId: r.requestId, method: r.method, path: r.path, queryString: r.queryString, headers: r.headers, body: text, ...(r.base64 ? { bodyEncoding: 'base64' as const } : {}), ...(r.streamed ? { streamed: true as const } : {}) });
      const push = pushOf(frame);
      assert.deepStrictEqual(push, {
        event: 'proxy_req',
        request: { requestId: r.requestId, method: r.method, path: r.path, queryString: r.queryString, headers: Object.entries(r.headers), body: r.base64 ? r.body : Buffer.from(text, 'utf8'), streamed: r.streamed },
      });
    }),
  fc.record({ j: joinRef, p: pathId, id: anyId, kind: fc.constantFrom('ws_check' as const, 'ws_connect' as const), path, queryString: fc.string(), headers: headerRecord }).map((r) => () => {
    const push = pushOf(encodeWsOpen(r.j, r.p, r.kind, { id: r.id, path: r.path, queryString: r.queryString, headers: r.headers }));
    assert.deepStrictEqual(push, { event: r.kind, open: { id: r.id, path: r.path, queryString: r.queryString, headers: Object.entries(r.headers) } });
  }),
  fc.record({ j: joinRef, p: pathId, id: anyId, opcode, data: bytes }).map((r) => () => {
    assert.deepStrictEqual(pushOf(encodeWsFrame(r.j, r.p, r.id, r.opcode, r.data)), { event: 'ws_frame', connectionId: r.id, opcode: r.opcode, data: r.data });
  }),
  fc.record({ j: joinRef, p: pathId, id: anyId, code: fc.integer({ min: 1000, max: 4999 }), reason: hostileString }).map((r) => () => {
    assert.deepStrictEqual(pushOf(encodeWsClose(r.j, r.p, r.id, r.code, r.reason)), { event: 'ws_close', connectionId: r.id, code: r.code, reason: r.reason });
  }),
);

function pushOf(text: string): unknown {
  const frame = decodeTunnelFrame(text);
  assert.ok(frame !== undefined);
  return decodeServerPush(frame.event, frame.payload);
}

/** A payload as it reaches the other side: through JSON. */
function wire(p: object): Payload {
  return JSON.parse(JSON.stringify(p)) as Payload;
}

/** What the sidecar sends, decoded by the server: the same response, check result or WebSocket event. */
const sidecarPayloadRoundTrip = fc.oneof(
  fc.record({ requestId: anyId, status: fc.integer({ min: 100, max: 999 }), headers: headerRecord, body: hostileString, base64: fc.boolean() }).map((r) => () => {
    assert.deepStrictEqual(decodeProxyResponse(wire(proxyResponsePayload(r))), { requestId: r.requestId, status: r.status, headers: Object.entries(r.headers), body: r.body, base64: r.base64 });
  }),
  fc.record({ id: hostileString, supported: fc.boolean(), protocol: fc.option(fc.string({ minLength: 1 }), { nil: undefined }), reason: fc.option(hostileString, { nil: undefined }) }).map((r) => () => {
    const { id, ...result } = r;
    const expected = Object.fromEntries(Object.entries({ checkId: id, ...result }).filter(([, v]) => v !== undefined));
    assert.deepStrictEqual({ ...decodeWsCheckResult(wire(wsCheckResultPayload(id, result))) }, expected);
  }),
  fc.record({ id: anyId, protocol: fc.string(), opcode, data: bytes, code: fc.integer({ min: 1000, max: 4999 }), reason: hostileString }).map((r) => () => {
    assert.deepStrictEqual(decodeWsEvent('ws_connected', wire(wsConnectedPayload(r.id, r.protocol))), r.protocol === '' ? { event: 'ws_connected', connectionId: r.id } : { event: 'ws_connected', connectionId: r.id, protocol: r.protocol });
    assert.deepStrictEqual(decodeWsEvent('ws_frame', wire(wsFramePayload(r.id, r.opcode, r.data))), { event: 'ws_frame', connectionId: r.id, opcode: r.opcode, data: r.data });
    assert.deepStrictEqual(decodeWsEvent('ws_closed', wire(wsClosedPayload(r.id, r.code, r.reason))), { event: 'ws_closed', connectionId: r.id, code: r.code, reason: r.reason });
    assert.deepStrictEqual(decodeWsEvent('ws_error', wire(wsErrorPayload(r.id, r.reason))), { event: 'ws_error', connectionId: r.id, reason: r.reason });
  }),
);

const streamEvent: fc.Arbitrary<StreamEvent> = fc.oneof(
  fc.record({ event: fc.constantFrom('proxy_req_chunk' as const, 'proxy_res_chunk' as const), requestId: anyId, seq: fc.maxSafeNat(), data: bytes }),
  fc.record({ event: fc.constantFrom('proxy_req_end' as const, 'proxy_res_end' as const, 'proxy_cancel' as const), requestId: anyId }),
  fc.record({ event: fc.constant('proxy_res_start' as const), requestId: anyId, status: fc.integer({ min: 100, max: 999 }), headers: headerEntriesArb }),
  fc.record({ event: fc.constant('proxy_res_error' as const), requestId: anyId, reason: hostileString }),
  fc.record({ event: fc.constant('proxy_credit' as const), requestId: anyId, bytes: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }) }),
);

/** Request ids of 1–255 UTF-8 bytes with no lone surrogate (which UTF-8 cannot carry). */
const binaryRequestId = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 }).filter((id) => Buffer.byteLength(id) <= 255);
const binaryChunk = fc.record({
  event: fc.constantFrom('proxy_req_chunk' as const, 'proxy_res_chunk' as const),
  requestId: binaryRequestId,
  seq: fc.nat({ max: 0xffffffff }),
  data: fc.oneof(bytes, fc.constant(Buffer.alloc(CHUNK_MAX_BYTES, 7))),
});

/** Binary messages: random bytes, and encoded chunks with one byte changed, cut short or lengthened. */
const binaryMessage = fc.oneof(
  fc.uint8Array({ maxLength: 400 }),
  fc.tuple(binaryChunk, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('flip', 'cut', 'grow')).map(([chunk, at, byte, how]) => {
    const frame = encodeBinaryChunk(chunk);
    const i = at % frame.length;
    if (how === 'cut') return frame.subarray(0, i);
    if (how === 'grow') return Buffer.concat([frame, Buffer.alloc(CHUNK_MAX_BYTES + 1 - (frame.length - 6 - (frame[5] ?? 0)), byte)]);
    frame[i] = byte;
    return frame;
  }),
);

/** decodeBinaryChunk: defined exactly for a known kind, a 1–255 byte id that fits, and at most CHUNK_MAX_BYTES of data. */
function checkBinaryChunk(message: Uint8Array): void {
  const chunk = decodeBinaryChunk(message);
  const n = message[5] ?? 0;
  const valid = message.length >= 7 && (message[0] === 1 || message[0] === 2) && n > 0 && 6 + n <= message.length && message.length - 6 - n <= CHUNK_MAX_BYTES;
  if (!valid) return assert.equal(chunk, undefined);
  assert.ok(chunk !== undefined);
  assert.equal(chunk.event, message[0] === 1 ? 'proxy_req_chunk' : 'proxy_res_chunk');
  assert.equal(chunk.seq, Buffer.from(message).readUInt32BE(1));
  assert.ok(chunk.data.equals(message.subarray(6 + n)));
}

// ── relay envelopes ────────────────────────────────────────────────────────

const KINDS = ['open', 'body', 'body_end', 'credit', 'cancel', 'body_credit', 'start', 'data', 'end', 'fail', 'ws_check', 'ws_open', 'ws_send', 'ws_recv', 'ws_close', 'ws_closed', 'ws_checked', 'ws_connected', 'ws_fail'];
const relayField = fc.oneof(
  jsonText,
  fc.constantFrom(...RELAYED_METHODS, ...OPCODES, 'null', '"AA=="', '{"a":"b"}', '[["a","b"]]', '[["a"]]', '{"a":1}', '0', '-1', '200', '1.5', '9007199254740992', 'true'),
).map((t) => (t.startsWith('"') || t.startsWith('[') || t.startsWith('{') || /^[-\d.ntf]/.test(t) ? t : JSON.stringify(t)));
const relayShaped = fc
  .tuple(fc.constantFrom(...KINDS, 'nope', '__proto__'), fc.oneof(fc.constant('"r1"'), jsonText), fc.array(relayField, { maxLength: 8 }))
  .map(([kind, id, rest]) => `[${[JSON.stringify(kind), id, ...rest].join(',')}]`);

function checkRelayText(text: string): void {
  const envelope = decodeRelayEnvelope(text);
  if (envelope === undefined) return;
  const value = parsed(text)?.value;
  assert.ok(Array.isArray(value) && value[0] === envelope.kind && value[1] === envelope.id && KINDS.includes(envelope.kind));
  if ('head' in envelope) assert.ok(Object.values(envelope.head.headers).every((v) => typeof v === 'string'));
  if (envelope.kind === 'start') assert.ok(Number.isInteger(envelope.status) && envelope.headers.every(isStringPair));
  if (envelope.kind === 'credit' || envelope.kind === 'body_credit') assert.ok(Number.isSafeInteger(envelope.bytes) && envelope.bytes > 0);
}

const id = hostileString;
const text = hostileString;
const length = fc.option(fc.maxSafeNat(), { nil: undefined });
const validEnvelope: fc.Arbitrary<RelayEnvelope> = fc.oneof(
  fc.record({ id, from: text, sidecar: text, method: fc.constantFrom(...RELAYED_METHODS), path: text, queryString: text, headers: headerRecord, bodyLength: length }).map(
    ({ id, from, sidecar, ...head }): RelayEnvelope => ({ kind: 'open', id, from, sidecar, head: { id, ...head } }),
  ),
  fc.record({ kind: fc.constantFrom('body' as const, 'data' as const), id, data: bytes }),
  fc.record({ kind: fc.constantFrom('body_end' as const, 'cancel' as const, 'end' as const), id }),
  fc.record({ kind: fc.constantFrom('credit' as const, 'body_credit' as const), id, bytes: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }) }),
  fc.record({ kind: fc.constant('start' as const), id, status: fc.integer({ min: 100, max: 999 }), headers: fc.array(fc.tuple(text, text), { maxLength: 5 }), contentLength: length }),
  fc.record({ kind: fc.constantFrom('fail' as const, 'ws_fail' as const), id, failure: text }),
  fc.record({ kind: fc.constantFrom('ws_check' as const, 'ws_open' as const), id, from: text, sidecar: text, path: text, queryString: text, headers: headerRecord }).map(
    ({ kind, id, from, sidecar, ...head }): RelayEnvelope => ({ kind, id, from, sidecar, head: { id, ...head } }),
  ),
  fc.record({ kind: fc.constantFrom('ws_send' as const, 'ws_recv' as const), id, opcode, data: bytes }),
  fc.record({ kind: fc.constantFrom('ws_close' as const, 'ws_closed' as const), id, code: fc.integer(), reason: text }),
  fc.record({ kind: fc.constant('ws_checked' as const), id, supported: fc.boolean(), protocol: fc.option(text, { nil: undefined }), reason: fc.option(text, { nil: undefined }) }),
  fc.record({ kind: fc.constant('ws_connected' as const), id, protocol: fc.option(text, { nil: undefined }) }),
);

export const tunnelProperties: FuzzProperty[] = [
  fuzzProperty('tunnel: decodeTunnelFrame(any text) is a frame exactly when the text is one', anyText(frameShaped), checkTunnelText),
  fuzzProperty('tunnel: payload decoders (both sides, stream events) on any payload', fc.tuple(event, payload), checkPayloadDecoders),
  fuzzProperty('tunnel: decode(encodeTunnelFrame(frame)) is the frame', fc.tuple(fc.option(hostileString, { nil: null }), fc.option(hostileString, { nil: null }), hostileString, hostileString, payload), ([j, r, topic, e, p]) => {
    // JSON carries no infinities: a payload parsed from 1e999 comes back with null there.
    assertSameJson(decodeTunnelFrame(encodeTunnelFrame(j, r, topic, e, p)), { joinRef: j, ref: r, topic, event: e, payload: viaJson(p) });
  }),
  fuzzProperty('tunnel: server pushes round-trip to the sidecar', serverPushRoundTrip, (run) => run()),
  fuzzProperty('tunnel: sidecar payloads round-trip to the server', sidecarPayloadRoundTrip, (run) => run()),
  fuzzProperty('tunnel: stream events round-trip', streamEvent, (e) => assert.deepStrictEqual(decodeStreamEvent(e.event, wire(streamEventPayload(e))), { ...e })),
  fuzzProperty('tunnel: decodeBinaryChunk(any bytes) is a chunk exactly when the bytes are one', binaryMessage, checkBinaryChunk),
  fuzzProperty('tunnel: decodeBinaryChunk(encodeBinaryChunk(chunk)) is the chunk', binaryChunk, (chunk) => assert.deepStrictEqual(decodeBinaryChunk(encodeBinaryChunk(chunk)), { ...chunk })),
  fuzzProperty('relay: decodeRelayEnvelope(any text) is well-formed or undefined', anyText(relayShaped), checkRelayText),
  fuzzProperty('relay: decode(encode(envelope)) is the envelope', validEnvelope, (envelope) => assert.deepStrictEqual(decodeRelayEnvelope(encodeRelayEnvelope(envelope)), { ...envelope })),
];
