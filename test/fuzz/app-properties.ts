// Properties of the client frame decoder on /ws (SPEC §3, src/protocol/app-codec.ts)
// and of the raw-member scan that relays payloads as written (json-member.ts).
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CLIENT_FRAME_TYPES, decodeClientFrame, MAX_USERS_PER_LIST, SIGNAL_TYPES } from '../../src/protocol/app-codec';
import { rawMember } from '../../src/protocol/json-member';
import { isValidName } from '../../src/protocol/names';
import { anyText, FIELD_NAMES, jsonObjectText, jsonText, keyString, shapedObjectText, validName } from './arbitraries';
import { assertSameJson, fuzzProperty, isPlainObject, parsed, viaJson, type FuzzProperty } from './property';

const KNOWN: ReadonlySet<string> = new Set(CLIENT_FRAME_TYPES);
const SIGNALS: ReadonlySet<string> = new Set(SIGNAL_TYPES);
const APP_FIELDS = ['type', 'id', 'to', 'device', 'payload', 'room', 'users', 'token'];

/** Frames with the members a client frame has, type first so that every branch is reached. */
const appShaped = fc
  .tuple(fc.constantFrom(...CLIENT_FRAME_TYPES, 'hack', '', 'constructor', '__proto__'), shapedObjectText(APP_FIELDS.slice(1)))
  .map(([type, rest]) => `{"type":${JSON.stringify(type)}${rest === '{}' ? '' : ','}${rest.slice(1)}`);

/** The decoder's contract (app-codec.ts): a typed frame that holds what the text said, or bad_message / unknown_type with the id when it was readable. */
function checkClientFrame(text: string): void {
  const result = decodeClientFrame(text);
  const json = parsed(text);
  if (!result.ok) {
    const { code, message, id } = result.error;
    assert.ok(code === 'bad_message' || code === 'unknown_type', code);
    assert.ok(typeof message === 'string' && message.length > 0 && message.length < 1024);
    if (json === undefined || !isPlainObject(json.value)) return assert.deepEqual(result.error, { code: 'bad_message', message: result.error.message });
    const obj = json.value;
    if (id !== undefined) assert.equal(id, obj.id);
    if (code === 'unknown_type') assert.ok(typeof obj.type === 'string' && !KNOWN.has(obj.type));
    return;
  }
  assert.ok(json !== undefined && isPlainObject(json.value), 'a frame decoded from what is not a JSON object');
  const obj = json.value;
  const frame = result.frame;
  assert.equal(frame.type, obj.type);
  assert.ok(KNOWN.has(frame.type));
  if (obj.id === undefined) assert.equal(frame.id, undefined);
  else assert.ok(frame.id === obj.id && frame.id.length >= 1 && frame.id.length <= 128);
  switch (frame.type) {
    case 'subscribe':
    case 'unsubscribe':
      return assert.ok(isValidName(frame.room) && frame.room === obj.room);
    case 'publish':
      assert.ok(isValidName(frame.room) && Object.hasOwn(obj, 'payload'));
      return assertSameJson(JSON.parse(frame.payloadJson), obj.payload);
    case 'presence':
    case 'watch':
    case 'unwatch':
      assert.ok(frame.users.length >= 1 && frame.users.length <= MAX_USERS_PER_LIST && frame.users.every(isValidName));
      return assert.deepEqual(frame.users, [...new Set(obj.users as string[])]);
    case 'ping':
      return;
    case 'refresh':
      return assert.ok(frame.token === obj.token && frame.token.length > 0);
    default:
      assert.ok(SIGNALS.has(frame.type) && isValidName(frame.to) && frame.to === obj.to);
      if (frame.device !== undefined) assert.ok(isValidName(frame.device) && frame.device === obj.device);
      // The payload is relayed as the client wrote it: the same value once parsed, -0 and 1e999 included.
      if (frame.payloadJson === undefined) return assert.equal(obj.payload, undefined);
      return assertSameJson(JSON.parse(frame.payloadJson), obj.payload);
  }
}

/** Valid frames of every type, as a client would write them with JSON.stringify. */
const validFrame: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record({ type: fc.constantFrom(...SIGNAL_TYPES), to: validName, device: validName, id: fc.string({ minLength: 1, maxLength: 128 }), payload: fc.jsonValue() }, { requiredKeys: ['type', 'to'] }),
  fc.record({ type: fc.constantFrom('subscribe', 'unsubscribe'), room: validName, id: fc.string({ minLength: 1, maxLength: 128 }) }, { requiredKeys: ['type', 'room'] }),
  fc.record({ type: fc.constant('publish'), room: validName, payload: fc.jsonValue() }),
  fc.record({ type: fc.constantFrom('presence', 'watch', 'unwatch'), users: fc.array(validName, { minLength: 1, maxLength: MAX_USERS_PER_LIST }) }),
  fc.record({ type: fc.constant('ping'), id: fc.string({ minLength: 1, maxLength: 128 }) }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('refresh'), token: fc.string({ minLength: 1, maxLength: 2000 }) }),
);

function checkRoundTrip(frame: Record<string, unknown>): void {
  const result = decodeClientFrame(JSON.stringify(frame));
  assert.ok(result.ok, JSON.stringify(result));
  const { payloadJson, ...rest } = result.frame as Record<string, unknown>;
  const { payload, users, ...expected } = frame;
  if (users !== undefined) expected.users = [...new Set(users as string[])];
  assert.deepStrictEqual({ ...rest }, expected);
  if (payload !== undefined) assert.deepStrictEqual(JSON.parse(payloadJson as string), viaJson(payload));
  else if (frame.type === 'publish') assert.equal(payloadJson, 'null');
  else assert.equal(payloadJson, undefined);
}

/** json-member.ts: the raw text of a member, parsed, is the member JSON.parse gives (last duplicate wins); or the scan declines. */
function checkRawMember([text, key]: [string, string]): void {
  const value = JSON.parse(text) as Record<string, unknown>;
  const raw = rawMember(text, key);
  if (!Object.hasOwn(value, key)) return assert.equal(raw, undefined);
  assert.ok(raw !== undefined, 'the scan declined valid JSON');
  assertSameJson(JSON.parse(raw), value[key]);
}

export const appProperties: FuzzProperty[] = [
  fuzzProperty('app: decodeClientFrame(any text) answers by its contract', anyText(appShaped), checkClientFrame),
  fuzzProperty('app: decode(encode(frame)) is the frame', validFrame, checkRoundTrip),
  fuzzProperty(
    'app: rawMember(json, key) is the member JSON.parse reads',
    fc.oneof(
      fc.tuple(jsonObjectText, fc.oneof(fc.constantFrom(...FIELD_NAMES), keyString)),
      // The key surely there, once or (when the object has one too) twice: the last one wins.
      jsonObjectText.map((text): [string, string] => [text.slice(1, -1).trim() === '' ? `{"payload":${text}}` : `{"payload":${text},${text.slice(1, -1)}}`, 'payload']),
    ),
    checkRawMember,
  ),
  fuzzProperty('app: rawMember on JSON of any shape', fc.tuple(jsonText, fc.constantFrom('payload', '__proto__', '')), ([text, key]) => void rawMember(text, key)),
];
