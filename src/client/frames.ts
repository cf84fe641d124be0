// The frames the client reads (SPEC §3), checked as far as the client relies
// on them. The server is trusted to speak the protocol, but a frame the client
// cannot use is reported (`error` event, code `bad_frame`) rather than thrown
// from a socket handler.
import type { SignalType } from '../protocol/app-codec';

export type PresenceStatus = 'online' | 'offline';

export interface Member {
  user: string;
  device: string;
}

/** Every frame may carry the `id` of the request it answers. */
export type ServerFrame = (
  | { type: 'welcome'; user: string; device: string; session: string; node: string; heartbeat_ms: number; resumed?: boolean; reason?: string }
  | { type: SignalType; from: string; from_device: string; payload?: unknown; room?: undefined; id?: undefined }
  | { type: 'message'; room: string; from: string; from_device: string; payload: unknown; id?: undefined }
  | { type: 'ack'; id: string; queued?: boolean }
  | { type: 'error'; code: string; message: string; id?: string; retry_after_ms?: number }
  | { type: 'subscribed'; room: string; members: Member[]; id?: string }
  | { type: 'unsubscribed'; room: string; id?: string }
  | { type: 'member_joined' | 'member_left'; room: string; user: string; device: string }
  | { type: 'presence'; users: Record<string, PresenceStatus>; id?: string; user?: undefined }
  | { type: 'presence'; user: string; status: PresenceStatus; id?: undefined }
  | { type: 'watching'; users: Record<string, PresenceStatus>; id?: string }
  | { type: 'unwatched'; users: string[]; id?: string }
  | { type: 'pong'; ts: number; id?: string }
  | { type: 'refreshed'; exp: number; id?: string }
  | { type: 'event'; event: string; payload: unknown }
  | { type: 'draining'; reconnect_after_ms: number }
) & { id?: string };

const SIGNALS: ReadonlySet<string> = new Set(['offer', 'answer', 'candidate', 'bye', 'message']);

const isString = (v: unknown): v is string => typeof v === 'string';
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStates = (v: unknown): v is Record<string, PresenceStatus> =>
  isObject(v) && Object.values(v).every((s) => s === 'online' || s === 'offline');
const isMember = (v: unknown): v is Member => isObject(v) && isString(v.user) && isString(v.device);

/** The fields each frame type must have, beyond `type` (and an optional string `id`). */
function wellFormed(f: Record<string, unknown>): boolean {
  switch (f.type) {
    case 'welcome':
      return isString(f.user) && isString(f.device) && isString(f.session) && isString(f.node) && isNumber(f.heartbeat_ms) &&
        (f.resumed === undefined || typeof f.resumed === 'boolean') && (f.reason === undefined || isString(f.reason))
    case 'ack':
      return isString(f.id);
    case 'error':
      return isString(f.code);
    case 'subscribed':
      return isString(f.room) && Array.isArray(f.members) && f.members.every(isMember);
    case 'unsubscribed':
      return isString(f.room);
    case 'member_joined':
    case 'member_left':
      return isString(f.room) && isMember(f);
    case 'presence':
      return f.user === undefined ? isStates(f.users) : isString(f.user) && (f.status === 'online' || f.status === 'offline');
    case 'watching':
      return isStates(f.users);
    case 'unwatched':
      return Array.isArray(f.users);
    case 'pong':
      return true;
    case 'refreshed':
      return isNumber(f.exp);
    case 'event':
      return isString(f.event);
    case 'draining':
      return isNumber(f.reconnect_after_ms);
    default:
      // A signal, or a room message (a `message` with a room).
      return SIGNALS.has(f.type as string) && isString(f.from) && isString(f.from_device) && (f.room === undefined || isString(f.room));
  }
}

/** The frame, or undefined when `data` is not a frame this client understands. */
export function parseServerFrame(data: unknown): ServerFrame | undefined {
  if (!isString(data)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch (_notJson) {
    return undefined;
  }
  if (!isObject(value) || !isString(value.type) || (value.id !== undefined && !isString(value.id))) return undefined;
  return wellFormed(value) ? (value as ServerFrame) : undefined;
}
