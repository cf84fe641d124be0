// Hostile inputs for the decoders' property tests (test/fuzz/properties.ts).
//
// JSON is generated as text, not as values run through JSON.stringify, so that
// it can hold what a peer can write and a JS object literal cannot: `__proto__`
// as an own member (JSON.parse makes it one), duplicate keys, numbers past
// double precision (1e999, 20-digit integers), -0, whitespace anywhere, lone
// surrogates. The "shaped" arbitraries use the members each decoder reads, with
// values that are near misses of valid ones, so that generation reaches past
// the first check of every decoder rather than stopping at "not an object".
import fc from 'fast-check';

/** Strings that have broken parsers, routers and object maps elsewhere. */
export const NASTY_STRINGS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  '__defineGetter__',
  '..',
  '.',
  '%2e%2e',
  '%2E.',
  '.%2e',
  '%2f',
  '%5c',
  '\\',
  '//',
  '\r\n',
  '\n',
  '\r',
  '\t',
  '\u0000',
  '\u2028',
  '\ud800',
  '%',
  '%zz',
  '#',
  '?',
  '',
  ' ',
  'a'.repeat(129),
  'NaN',
  '-0',
  '1e999',
];

const HOSTILE_UNITS = ['\r', '\n', '\t', '\u0000', '.', '/', '\\', '%', '2', 'e', 'E', 'f', 'a', '_', '-', ':', '@', ' ', '"', '{', '[', '#', '?', '\ud800', '\u2028', 'é', '😀'];

/** Any string: printable, any code point (lone surrogates included), runs of hostile characters, or a known troublemaker. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: fc.constantFrom(...HOSTILE_UNITS), maxLength: 30 }),
  fc.constantFrom(...NASTY_STRINGS),
);

/** The members the decoders read, so that random objects hit them. */
export const FIELD_NAMES = [
  'type', 'id', 'to', 'device', 'payload', 'room', 'users', 'token',
  'request_id', 'status', 'headers', 'body', 'chunked', 'chunks', 'body_encoding', 'check_id', 'supported', 'protocol', 'reason',
  'connection_id', 'opcode', 'data', 'code', 'seq', 'bytes', 'extensions', 'ts', 'reconnect_after_ms', 'method', 'path',
  'query_string', 'streamed', 'response', 'expires_in',
] as const;

/** Values that are valid somewhere, or almost. */
const NEAR_MISS_TEXT = [
  'null', 'true', 'false', '0', '-0', '1', '-1', '99', '100', '200', '999', '1000', '100.5', '1e2', '1e999', '-1e999', '9007199254740993',
  '123456789012345678901234567890', '1.5e-400', '4294967296', '""', '"a"', '"alice"', '"room-1"', '"a b"', '"AA=="', '"AAA"',
  '"YQ=="', '"Y Q=="', '"YQ"', '"text"', '"binary"', '"ping"', '"pong"', '"close"', '"base64"', '"ok"', '"error"', '"GET"', '"get"', '"TRACE"',
  '"/"', '"/a/../.."', '"offer"', '"message"', '"publish"', '"presence"', '"refresh"', '"ping"', '"hack"', '"__proto__"', '"constructor"',
  '["binary_body","stream","binary_frames"]', '["stream"]', '["alice","bob","alice"]', '[]', '[null]', '{}', '{"x-a":"1"}',
  '{"Content-Length":"5","Connection":"close"}', '{"__proto__":{"polluted":1}}', '{"constructor":{"prototype":{"polluted":1}}}',
];

const scalarText: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...NEAR_MISS_TEXT),
  fc.integer().map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n)),
  fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }).map(String),
  hostileString.map((s) => JSON.stringify(s)),
);

const whitespace = fc.constantFrom('', '', '', ' ', '\n', '\t ', '\r\n  ');

export const keyString: fc.Arbitrary<string> = fc.oneof(fc.constantFrom(...FIELD_NAMES), fc.constantFrom(...NASTY_STRINGS), hostileString);

function objectText(members: [string, string][], ws: string): string {
  return `{${ws}${members.map(([key, value]) => `${JSON.stringify(key)}${ws}:${ws}${value}`).join(`,${ws}`)}${ws}}`;
}

/** JSON text of any shape, up to a few levels deep, objects keyed mostly by the decoders' member names. */
export const { json: jsonText, object: jsonObjectText } = fc.letrec<{ json: string; array: string; object: string }>((tie) => ({
  json: fc.oneof({ depthSize: 'small', withCrossShrink: true }, scalarText, tie('array'), tie('object')),
  array: fc.tuple(fc.array(tie('json'), { maxLength: 6 }), whitespace).map(([items, ws]) => `[${ws}${items.join(`,${ws}`)}${ws}]`),
  object: fc.tuple(fc.array(fc.tuple(keyString, tie('json')), { maxLength: 8 }), whitespace).map(([members, ws]) => objectText(members, ws)),
}));

/** Nesting far deeper than any frame needs: arrays, objects, and both inside a frame's payload. */
export const deepText: fc.Arbitrary<string> = fc
  .tuple(fc.integer({ min: 1, max: 20_000 }), fc.constantFrom('array', 'object', 'payload', 'tunnel', 'unclosed'))
  .map(([depth, kind]) => {
    switch (kind) {
      case 'array':
        return `${'['.repeat(depth)}${']'.repeat(depth)}`;
      case 'object':
        return `${'{"payload":'.repeat(depth)}1${'}'.repeat(depth)}`;
      case 'payload':
        return `{"type":"offer","to":"a","payload":${'['.repeat(depth)}${']'.repeat(depth)}}`;
      case 'tunnel':
        return `[null,null,"t","proxy_res",${'{"headers":'.repeat(depth)}{}${'}'.repeat(depth)}]`;
      default:
        return '['.repeat(depth);
    }
  });

/** An object text whose members are the given names (each present or not), with values of any shape. */
export function shapedObjectText(names: readonly string[]): fc.Arbitrary<string> {
  return fc
    .tuple(fc.subarray([...names]), fc.array(fc.tuple(keyString, jsonText), { maxLength: 2 }), fc.array(jsonText, { minLength: names.length, maxLength: names.length }), whitespace)
    .map(([present, extra, values, ws]) => objectText([...present.map((name, i): [string, string] => [name, values[i] ?? 'null']), ...extra], ws));
}

/** Text of every kind a decoder of text frames can be handed: anything, JSON, deep JSON, bytes read as UTF-8, and `shaped`. */
export function anyText(shaped: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: hostileString, weight: 1 },
    { arbitrary: jsonText, weight: 2 },
    { arbitrary: deepText, weight: 1 },
    { arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes).toString('utf8')), weight: 1 },
    { arbitrary: shaped, weight: 4 },
    // A valid frame with one character cut off or doubled: near misses of the parser itself.
    { arbitrary: fc.tuple(shaped, fc.nat(), fc.boolean()).map(([text, n, cut]) => nearMiss(text, n % (text.length + 1), cut)), weight: 1 },
  );
}

function nearMiss(text: string, at: number, cut: boolean): string {
  return cut ? text.slice(0, at) : text.slice(0, at) + text.slice(Math.max(0, at - 1));
}

/** A JSON object as JSON.parse builds it from text (own `__proto__` members and all). */
export const parsedObject: fc.Arbitrary<Record<string, unknown>> = jsonObjectText.map((text) => JSON.parse(text) as Record<string, unknown>);

export function parsedShapedObject(names: readonly string[]): fc.Arbitrary<Record<string, unknown>> {
  return shapedObjectText(names).map((text) => JSON.parse(text) as Record<string, unknown>);
}

/** Names as SPEC §3.3 allows them: user ids, devices, rooms. */
export const validName = fc.stringMatching(/^[A-Za-z0-9_.:@-]{1,128}$/);

/** A non-empty id of any characters (request ids, connection ids): the decoders take any. */
export const anyId = hostileString.filter((s) => s !== '');

/** Header names as tokens (RFC 9110 §5.6.2), starting with a letter so that no name is an array index. */
export const headerName = fc.stringMatching(/^[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,20}$/);

/** Header values a real peer could send: visible characters, spaces and tabs. */
export const headerValue = fc.string({ unit: fc.constantFrom('a', 'Z', '0', ' ', '\t', ';', '=', ',', '"', 'é', '/', ':'), maxLength: 30 });

/** Bytes: mostly short, now and then a full 64 KiB chunk's worth (filled cheaply: a 64 K-element array arbitrary is slow to draw). */
export const bytes: fc.Arbitrary<Buffer> = fc.oneof(
  { arbitrary: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)), weight: 19 },
  {
    arbitrary: fc.tuple(fc.integer({ min: 60_000, max: 64 * 1024 }), fc.integer()).map(([length, seed]) => {
      const out = Buffer.allocUnsafe(length);
      for (let i = 0, x = seed | 1; i < length; i++) out[i] = (x = (Math.imul(x, 1103515245) + 12345) | 0) >>> 24;
      return out;
    }),
    weight: 1,
  },
);
