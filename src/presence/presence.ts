// Cluster-wide state about who is connected: user → devices (with the node
// and session holding each), and room membership. Memory implementation in
// memory-presence.ts; a Redis one with node leases serves a cluster.
//
// The store decides the presence transitions atomically (first device of a
// user → online, last device gone → offline), so that two nodes changing the
// same user at once cannot both or neither report the change.
//
// What a store write that fails (Redis down) leaves behind differs by kind:
// - a device (addDevice, removeDevice) belongs to a live socket: the store
//   keeps the node's intent and writes it once Redis answers again, and
//   reports what that write changed through `onChanges`;
// - a room join is the client's request: it fails, and nothing is kept (the
//   client hears `unavailable`); a leave that fails is finished by the store
//   later, like a device's goodbye.
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

export interface RoomMember extends Member {
  room: string;
  /** The member's session, when it is one of this node's (a restored membership). */
  session?: string;
}

/**
 * Changes the store made by itself, for the router to announce like its own: a dead node's state
 * reaped, writes an outage had deferred, or this node's state restored after Redis lost it.
 */
export interface StoreChanges {
  online: string[];
  offline: string[];
  /** Memberships written again after Redis lost them (a restart, or this node was reaped): member_joined. */
  joined: RoomMember[];
  left: RoomMember[];
  /** Connections to close with 4009: a deferred registration replaced them, or a restored one found its device taken by a newer one. */
  replaced: DeviceConnection[];
  /** Redis answers again after an outage: announcements made meanwhile may have been lost. */
  recovered: boolean;
}

export function noChanges(): StoreChanges {
  return { online: [], offline: [], joined: [], left: [], replaced: [], recovered: false };
}

export function isEmpty(changes: StoreChanges): boolean {
  return changes.online.length + changes.offline.length + changes.joined.length + changes.left.length + changes.replaced.length === 0 && !changes.recovered;
}

export interface PresenceStore {
  /** Starts background work (node leases); resolves once this node is registered. */
  start(): Promise<void>;
  /** The router announces these changes (presence frames, member_joined/left, kicks); the store waits for the returned promise. */
  onChanges(listener: (changes: StoreChanges) => MaybePromise<void>): void;
  /**
   * Registers a device connection. A result now from the in-process store (a connect then needs no
   * promise), a promise from Redis; rejects when Redis failed, and the store registers it later.
   */
  addDevice(conn: DeviceConnection): MaybePromise<AddResult>;
  /** Removes the device if `session` still holds it (a replaced session removes nothing); rejects when Redis failed, and the store removes it later. */
  removeDevice(conn: DeviceConnection): MaybePromise<{ wentOffline: boolean }>;
  /** A null-prototype record: user names are client strings (`__proto__` is a valid one). */
  status(users: readonly string[]): Promise<Record<string, PresenceStatus>>;
  /** Adds the member and returns every member of the room, the new one included; rejects (keeping nothing) when Redis failed. */
  joinRoom(room: string, member: Member & { session: string; node: string }): Promise<Member[]>;
  /** Every member of the room. */
  members(room: string): Promise<Member[]>;
  /** Removes the member; whether it was one. Rejects when Redis failed, and the store removes it later. */
  leaveRoom(room: string, member: Member & { session: string }): Promise<boolean>;
  close(): Promise<void>;
}

/** A record keyed by client strings, without Object.prototype (so `__proto__` or `constructor` are plain keys). */
export function statusRecord(): Record<string, PresenceStatus> {
  return Object.create(null) as Record<string, PresenceStatus>;
}
