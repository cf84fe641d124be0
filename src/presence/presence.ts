// Cluster-wide state about who is connected: user → devices (with the node
// and session holding each), and room membership. Memory implementation in
// memory-presence.ts; a Redis one with node leases serves a cluster.
//
// The store decides the presence transitions atomically (first device of a
// user → online, last device gone → offline), so that two nodes changing the
// same user at once cannot both or neither report the change.
import type { Member, PresenceStatus } from '../protocol/server-frames';
import type { MaybePromise } from '../util/maybe-promise';

export interface DeviceConnection {
  user: string;
  device: string;
  session: string;
  node: string;
}

export interface AddResult {
  /** The user had no device before this one. */
  wentOnline: boolean;
  /** The session that held the same (user, device) before, now replaced (SPEC §3.1, 4009). */
  replaced?: { session: string; node: string };
}

/** Changes the store made by itself: a dead node's state reaped, or this node's state restored after Redis lost it. */
export interface StoreChanges {
  online: string[];
  offline: string[];
  left: (Member & { room: string })[];
}

export interface PresenceStore {
  /** Starts background work (node leases); resolves once this node is registered. */
  start(): Promise<void>;
  /** The router announces these changes (presence frames, member_left) like its own. */
  onChanges(listener: (changes: StoreChanges) => void): void;
  /** A result now from the in-process store (a connect then needs no promise), a promise from Redis. */
  addDevice(conn: DeviceConnection): MaybePromise<AddResult>;
  /** Removes the device if `session` still holds it (a replaced session removes nothing). */
  removeDevice(conn: DeviceConnection): MaybePromise<{ wentOffline: boolean }>;
  status(users: readonly string[]): Promise<Record<string, PresenceStatus>>;
  /** Adds the member and returns every member of the room, the new one included. */
  joinRoom(room: string, member: Member & { session: string; node: string }): Promise<Member[]>;
  leaveRoom(room: string, session: string): Promise<void>;
  close(): Promise<void>;
}
