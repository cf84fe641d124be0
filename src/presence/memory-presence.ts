// Presence for one process (the in-memory bus). Device changes answer
// synchronously (a connect needs no promise); the rest returns promises like
// the Redis implementation.
import type { Member, PresenceStatus } from '../protocol/server-frames';
import type { MaybePromise } from '../util/maybe-promise';
import { statusRecord, type AddResult, type DeviceConnection, type PresenceStore, type StoreChanges } from './presence';

interface RoomMember extends Member {
  node: string;
}

export class MemoryPresence implements PresenceStore {
  /**
   * user → the holder of their one device, or device → holder once they have several. Most users
   * have one device connected: a Map per user would cost ~150 B per connection (bench W4).
   */
  private readonly users = new Map<string, DeviceConnection | Map<string, DeviceConnection>>();
  /** room → session → member */
  private readonly rooms = new Map<string, Map<string, RoomMember>>();

  start(): Promise<void> {
    return Promise.resolve();
  }

  /** One process: nothing changes behind the router's back. */
  onChanges(_listener: (changes: StoreChanges) => MaybePromise<void>): void {}

  addDevice(conn: DeviceConnection): AddResult {
    const held = this.users.get(conn.user);
    let previous: DeviceConnection | undefined;
    if (held === undefined) this.users.set(conn.user, conn);
    else if (held instanceof Map) {
      previous = held.get(conn.device);
      held.set(conn.device, conn);
    } else if (held.device === conn.device) {
      previous = held;
      this.users.set(conn.user, conn);
    } else
      this.users.set(
        conn.user,
        new Map([
          [held.device, held],
          [conn.device, conn],
        ]),
      );
    const result: AddResult = { wentOnline: held === undefined };
    if (previous !== undefined && previous.session !== conn.session) result.replaced = { session: previous.session, node: previous.node };
    return result;
  }

  removeDevice(conn: DeviceConnection): { wentOffline: boolean } {
    const held = this.users.get(conn.user);
    const holder = held instanceof Map ? held.get(conn.device) : held?.device === conn.device ? held : undefined;
    // A replaced session removes nothing: the device belongs to its successor.
    if (holder === undefined || holder.session !== conn.session) return { wentOffline: false };
    if (held instanceof Map) {
      held.delete(conn.device);
      const [last, ...more] = held.values();
      if (last !== undefined && more.length === 0) this.users.set(conn.user, last);
      if (last !== undefined) return { wentOffline: false };
    }
    this.users.delete(conn.user);
    return { wentOffline: true };
  }

  status(users: readonly string[]): Promise<Record<string, PresenceStatus>> {
    const out = statusRecord();
    for (const user of users) out[user] = this.users.has(user) ? 'online' : 'offline';
    return Promise.resolve(out);
  }

  joinRoom(room: string, member: Member & { session: string; node: string }): Promise<Member[]> {
    let members = this.rooms.get(room);
    if (members === undefined) this.rooms.set(room, (members = new Map<string, RoomMember>()));
    members.set(member.session, { user: member.user, device: member.device, node: member.node });
    return this.members(room);
  }

  members(room: string): Promise<Member[]> {
    return Promise.resolve([...(this.rooms.get(room)?.values() ?? [])].map(({ user, device }) => ({ user, device })));
  }

  leaveRoom(room: string, member: Member & { session: string }): Promise<boolean> {
    const members = this.rooms.get(room);
    const removed = members?.delete(member.session) ?? false;
    if (members?.size === 0) this.rooms.delete(room);
    return Promise.resolve(removed);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
