// PURE decoder of client frames on /ws (SPEC §3). No I/O, no timers, never
// throws: every input yields either a typed frame or a protocol error with the
// code to send back (and the frame's `id` when it could be read).
import type { ErrorCode } from '../errors/codes';
import { rawMember } from './json-member';
import { isValidName, NAME_RULE } from './names';

export const MAX_USERS_PER_LIST = 100;
const MAX_ID_LENGTH = 128;

export const SIGNAL_TYPES = ['offer', 'answer', 'candidate', 'bye', 'message'] as const;
export type SignalType = (typeof SIGNAL_TYPES)[number];

// `payloadJson` is the payload's JSON text as the client wrote it (undefined: no payload); it is
// relayed without being parsed into objects and serialised again (see json-member.ts).
export type ClientFrame =
  | { type: SignalType; to: string; device?: string; id?: string; payloadJson: string | undefined }
  | { type: 'subscribe' | 'unsubscribe'; room: string; id?: string }
  | { type: 'publish'; room: string; payloadJson: string; id?: string }
  | { type: 'presence' | 'watch' | 'unwatch'; users: string[]; id?: string }
  | { type: 'ping'; id?: string }
  | { type: 'refresh'; token: string; id?: string };

export type ClientFrameType = ClientFrame['type'];

export const CLIENT_FRAME_TYPES: readonly ClientFrameType[] = [
  ...SIGNAL_TYPES,
  'subscribe',
  'unsubscribe',
  'publish',
  'presence',
  'watch',
  'unwatch',
  'ping',
  'refresh',
];

export interface DecodeError {
  code: Extract<ErrorCode, 'bad_message' | 'unknown_type'>;
  message: string;
  id?: string;
}

export type DecodeResult = { ok: true; frame: ClientFrame } | { ok: false; error: DecodeError };

const KNOWN_TYPES: ReadonlySet<string> = new Set(CLIENT_FRAME_TYPES);
const SIGNALS: ReadonlySet<string> = new Set(SIGNAL_TYPES);

/** The payload's text as written in `text` when it can be cut out cheaply, else serialised again. */
function payloadJson(payload: unknown, text: string | undefined): string | undefined {
  if (payload === undefined) return undefined;
  return (text === undefined ? undefined : rawMember(text, 'payload')) ?? JSON.stringify(payload);
}

/** A module function, not a closure per decoded frame (the hot path). */
function withId(frame: ClientFrame, id: string | undefined): DecodeResult {
  if (id !== undefined) frame.id = id;
  return { ok: true, frame };
}

function bad(message: string, id?: string): DecodeResult {
  return { ok: false, error: id === undefined ? { code: 'bad_message', message } : { code: 'bad_message', message, id } };
}

/** Decodes one text frame. Binary frames are rejected before this by the session. */
export function decodeClientFrame(text: string): DecodeResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return bad('frame is not valid JSON');
  }
  return decodeClientObject(value, text);
}

/** Validates an already-parsed JSON value as a client frame; `text`, when given, is what it was parsed from. */
export function decodeClientObject(value: unknown, text?: string): DecodeResult {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return bad('frame must be a JSON object');
  const obj = value as Record<string, unknown>;

  // The id is read first so that every later error can echo it.
  let id: string | undefined;
  if (obj.id !== undefined) {
    if (typeof obj.id !== 'string' || obj.id.length < 1 || obj.id.length > MAX_ID_LENGTH)
      return bad('"id" must be a string of 1-128 characters');
    id = obj.id;
  }
  const type = obj.type;
  if (typeof type !== 'string') return bad('"type" must be a string', id);
  if (!KNOWN_TYPES.has(type)) {
    const error: DecodeError = { code: 'unknown_type', message: `unknown frame type "${type.slice(0, 64)}"` };
    if (id !== undefined) error.id = id;
    return { ok: false, error };
  }
  if (SIGNALS.has(type)) {
    if (!isValidName(obj.to)) return bad(`"to" must be a user id of ${NAME_RULE}`, id);
    if (obj.device !== undefined && !isValidName(obj.device))
      return bad(`"device" must be a device id of ${NAME_RULE}`, id);
    const frame: ClientFrame = { type: type as SignalType, to: obj.to, payloadJson: payloadJson(obj.payload, text) };
    if (obj.device !== undefined) frame.device = obj.device;
    return withId(frame, id);
  }

  switch (type) {
    case 'subscribe':
    case 'unsubscribe':
      if (!isValidName(obj.room)) return bad(`"room" must be ${NAME_RULE}`, id);
      return withId({ type, room: obj.room }, id);
    case 'publish':
      if (!isValidName(obj.room)) return bad(`"room" must be ${NAME_RULE}`, id);
      // Own members only: `in` would also find what an object inherits.
      if (!Object.hasOwn(obj, 'payload')) return bad('"payload" is required', id);
      return withId({ type, room: obj.room, payloadJson: payloadJson(obj.payload, text) ?? 'null' }, id);
    case 'presence':
    case 'watch':
    case 'unwatch': {
      const users = obj.users;
      if (!Array.isArray(users) || users.length < 1 || users.length > MAX_USERS_PER_LIST)
        return bad(`"users" must be an array of 1-${MAX_USERS_PER_LIST} user ids`, id);
      for (const user of users) if (!isValidName(user)) return bad('"users" holds an invalid user id', id);
      // Duplicates are harmless but would double-count against the watch limit.
      return withId({ type, users: [...new Set(users as string[])] }, id);
    }
    case 'ping':
      return withId({ type }, id);
    case 'refresh':
      if (typeof obj.token !== 'string' || obj.token.length === 0 || obj.token.length > 16384)
        return bad('"token" must be a non-empty string', id);
      return withId({ type, token: obj.token }, id);
  }
  /* c8 ignore next */
  return bad('unhandled type', id);
}
