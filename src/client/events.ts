// The events of SwitchboardClient and the values its methods resolve with.
import type { SignalType } from '../protocol/app-codec';
import type { SwitchboardError } from './errors';
import type { Member, PresenceStatus } from './frames';

export type { SignalType, Member, PresenceStatus };

/** The server's welcome, in camelCase. */
export interface Welcome {
  user: string;
  device: string;
  /** The session id: presented as `?resume=` on the next reconnect after a loss the application did not ask for (SPEC §3.9). */
  session: string;
  /** The node that holds this connection. */
  node: string;
  heartbeatMs: number;
  /** True when this connection took over the previous session: rooms, watches and the messages missed meanwhile came back. */
  resumed: boolean;
}

/**
 * Why the server did not resume a session (SPEC §3.9): `expired` (past the
 * resume window, or unknown), `forbidden` (another user's session),
 * `overflow` (more messages were missed than the server keeps), `taken`
 * (another connection resumed it first), `unavailable` (the server could not
 * look it up, or does not resume at all). A reason newer than this SDK
 * passes through as it came.
 */
export type ResumeFailureReason = 'expired' | 'forbidden' | 'overflow' | 'taken' | 'unavailable' | (string & {});

export interface SendResult {
  /** The message id the server acknowledged. */
  id: string;
  /** True when the recipient is away but resumable and the message waits for it (SPEC §3.9). */
  queued: boolean;
}

export interface Signal {
  type: SignalType;
  from: string;
  fromDevice: string;
  payload: unknown;
}

export interface RoomMessage {
  room: string;
  from: string;
  fromDevice: string;
  payload: unknown;
}

export interface RoomMember extends Member {
  room: string;
}

export interface ClientEvents {
  /** A socket is being opened to `url` (the token is not part of it). */
  connecting: { url: string };
  /** The server's welcome: the connection is usable. */
  connected: Welcome;
  /**
   * The client asked to resume `session` and the server started a new one
   * instead (the `connected` before it has `resumed: false`): messages sent to
   * this client while it was away may be lost. Rooms and watches are restored
   * by the client, as after any new session (`joined` / `watching` follow).
   */
  resume_failed: { session: string; reason: ResumeFailureReason };
  /** A socket closed. `reconnectInMs` is when the next attempt starts; undefined when there will be none (see `closed`). */
  disconnected: { code: number; reason: string; reconnectInMs: number | undefined };
  /** The node is shutting down and will close this socket in `reconnectAfterMs`; the client then moves to another node. */
  draining: { reconnectAfterMs: number };
  /**
   * The client stopped for good: `close()` (1000), replaced by a newer
   * connection of the same device (4009), or a refused/expired token that
   * could not be renewed (1008 or 4001, reason `token_not_renewed` when the
   * provider gave the refused token again).
   */
  closed: { code: number; reason: string };
  /** offer / answer / candidate / bye / message from another user or device. */
  signal: Signal;
  /** The answer to a join, and to each rejoin after a reconnect (`rejoined`). */
  joined: { room: string; members: Member[]; rejoined: boolean };
  member_joined: RoomMember;
  member_left: RoomMember;
  room_message: RoomMessage;
  /** The current status of watched users: the answer to `watch()`, and to each re-watch after a reconnect. */
  watching: { users: Record<string, PresenceStatus> };
  /** A watched user went online or offline (also when that happened while this client was reconnecting). */
  presence: { user: string; status: PresenceStatus };
  /** A server-side publish (SPEC §4). */
  event: { event: string; payload: unknown };
  /** The in-band token refresh succeeded; `exp` is the new expiry (epoch seconds). */
  token_refreshed: { exp: number };
  /** An error no request was waiting for: the server's, a failed rejoin or refresh, the token provider's. */
  error: SwitchboardError;
}
