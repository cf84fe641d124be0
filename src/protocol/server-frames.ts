// PURE encoders of the frames the server sends on /ws (SPEC §3). Each returns
// the final text, so a frame meant for many recipients is encoded once and the
// same string is handed to every socket.
import type { ErrorCode } from '../errors/codes';
import type { SignalType } from './app-codec';

export type PresenceStatus = 'online' | 'offline';
/**
 * Each asked user's status. User ids are client strings and `__proto__` is a valid one: a record
 * must have no prototype (an assignment to `__proto__` on a plain object is lost), or be a Map.
 */
export type PresenceStates = Readonly<Record<string, PresenceStatus>> | ReadonlyMap<string, PresenceStatus>;
export interface Member {
  user: string;
  device: string;
}

/** Every `type` the server sends; used to pre-create metric label sets. */
export const SERVER_FRAME_TYPES = [
  'welcome',
  'offer',
  'answer',
  'candidate',
  'bye',
  'message',
  'ack',
  'error',
  'subscribed',
  'unsubscribed',
  'member_joined',
  'member_left',
  'presence',
  'watching',
  'unwatched',
  'pong',
  'refreshed',
  'event',
  'draining',
] as const;
export type ServerFrameType = (typeof SERVER_FRAME_TYPES)[number];

/** What JSON.stringify can write: a Map's entries become own keys (fromEntries defines them, so `__proto__` stays a key). */
const statesObject = (users: PresenceStates): Readonly<Record<string, PresenceStatus>> => (isMap(users) ? Object.fromEntries(users) : users);
const isMap = (users: PresenceStates): users is ReadonlyMap<string, PresenceStatus> => users instanceof Map;

const withId = <T extends object>(frame: T, id: string | undefined): T & { id?: string } =>
  id === undefined ? frame : { ...frame, id };

export const encode = {
  /** Concatenated: sent once per connection, and the object JSON.stringify would walk is built only for it (~2 µs per connect). */
  /** `reason`: why a resume asked for with `?resume=` was refused (SPEC §3.9); absent otherwise. */
  welcome: (f: { user: string; device: string; session: string; node: string; heartbeatMs: number; resumed: boolean; reason?: string }) =>
    `{"type":"welcome","user":${JSON.stringify(f.user)},"device":${JSON.stringify(f.device)},"session":${JSON.stringify(f.session)},"node":${JSON.stringify(f.node)},"heartbeat_ms":${f.heartbeatMs},"resumed":${f.resumed}${f.reason === undefined ? '' : `,"reason":${JSON.stringify(f.reason)}`}}`,

  /**
   * A relayed signal; `payloadJson` is the sender's payload text, copied as is (left out when the
   * sender gave none). Concatenated rather than JSON.stringify'd: the payload is already JSON.
   */
  signal: (type: SignalType, sender: string, payloadJson: string | undefined) =>
    `{"type":"${type}",${sender}${payloadJson === undefined ? '' : `,"payload":${payloadJson}`}}`,

  /**
   * A sender's `"from":…,"from_device":…` members, for `signal` and `roomMessage`. Encoded once per
   * connection rather than per message: two JSON.stringify calls and their strings fewer per relay.
   */
  sender: (user: string, device: string) => `"from":${JSON.stringify(user)},"from_device":${JSON.stringify(device)}`,

  /** Concatenated: one per acknowledged message (the hot path). */
  ack: (id: string, queued = false) => `{"type":"ack","id":${JSON.stringify(id)}${queued ? ',"queued":true' : ''}}`,

  error: (code: ErrorCode, message: string, id?: string, extra?: { retry_after_ms?: number }) =>
    JSON.stringify(withId({ type: 'error', code, message, ...extra }, id)),

  subscribed: (room: string, members: Member[], id?: string) =>
    JSON.stringify(withId({ type: 'subscribed', room, members }, id)),
  unsubscribed: (room: string, id?: string) => JSON.stringify(withId({ type: 'unsubscribed', room }, id)),
  memberJoined: (room: string, member: Member) =>
    JSON.stringify({ type: 'member_joined', room, user: member.user, device: member.device }),
  memberLeft: (room: string, member: Member) =>
    JSON.stringify({ type: 'member_left', room, user: member.user, device: member.device }),
  /** A room message; `payloadJson` as in `signal`. */
  roomMessage: (room: string, sender: string, payloadJson: string) =>
    `{"type":"message","room":${JSON.stringify(room)},${sender},"payload":${payloadJson}}`,

  presenceReply: (users: PresenceStates, id?: string) => JSON.stringify(withId({ type: 'presence', users: statesObject(users) }, id)),
  presenceChange: (user: string, status: PresenceStatus) => JSON.stringify({ type: 'presence', user, status }),
  watching: (users: PresenceStates, id?: string) => JSON.stringify(withId({ type: 'watching', users: statesObject(users) }, id)),
  unwatched: (users: string[], id?: string) => JSON.stringify(withId({ type: 'unwatched', users }, id)),

  pong: (ts: number, id?: string) => JSON.stringify(withId({ type: 'pong', ts }, id)),
  refreshed: (exp: number, id?: string) => JSON.stringify(withId({ type: 'refreshed', exp }, id)),
  event: (event: string, payload: unknown) => JSON.stringify({ type: 'event', event, payload }),
  draining: (reconnectAfterMs: number) => JSON.stringify({ type: 'draining', reconnect_after_ms: reconnectAfterMs }),
};
