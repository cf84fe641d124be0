// Presence for one process (the in-memory bus). Synchronous underneath; the
// Promise interface matches the Redis implementation.
import type { Member, PresenceStatus } from '../protocol/server-frames';
import type { AddResult, DeviceConnection, PresenceStore, StoreChanges } from './presence';

interface RoomMember extends Member {
  node: string;
}

export class MemoryPresence implements PresenceStore {
  /** user → device → holder */
  private readonly users = new Map<string, Map<string, DeviceConnection>>();
  /** room → session → member */
  private readonly rooms = new Map<string, Map<string, RoomMember>>();

  start(): Promise<void> {
    return Promise.resolve();
  }

  /** One process: nothing changes behind the router's back. */
  onChanges(_listener: (changes: StoreChanges) => void): void {}

  addDevice(conn: DeviceConnection): AddResult {
    let devices = this.users.get(conn.user);
    const wentOnline = devices === undefined || devices.size === 0;
    if (devices === undefined) this.users.set(conn.user, (devices = new Map<string, DeviceConnection>()));
    const previous = devices.get(conn.device);
    devices.set(conn.device, conn);
    const result: AddResult = { wentOnline };
    if (previous !== undefined && previous.session !== conn.session)
      result.replaced = { session: previous.session, node: previous.node };
    return result;
  }

  removeDevice(conn: DeviceConnection): { wentOffline: boolean } {
    const devices = this.users.get(conn.user);
    const holder = devices?.get(conn.device);
    if (devices === undefined || holder === undefined || holder.session !== conn.session) return { wentOffline: false };
    devices.delete(conn.device);
    if (devices.size > 0) return { wentOffline: false };
    this.users.delete(conn.user);
    return { wentOffline: true };
  }

  status(users: readonly string[]): Promise<Record<string, PresenceStatus>> {
    const out: Record<string, PresenceStatus> = {};
    for (const user of users) out[user] = (this.users.get(user)?.size ?? 0) > 0 ? 'online' : 'offline';
    return Promise.resolve(out);
  }

  joinRoom(room: string, member: Member & { session: string; node: string }): Promise<Member[]> {
    let members = this.rooms.get(room);
    if (members === undefined) this.rooms.set(room, (members = new Map<string, RoomMember>()));
    members.set(member.session, { user: member.user, device: member.device, node: member.node });
    return Promise.resolve([...members.values()].map(({ user, device }) => ({ user, device })));
  }

  leaveRoom(room: string, session: string): Promise<void> {
    const members = this.rooms.get(room);
    if (members !== undefined) {
      members.delete(session);
      if (members.size === 0) this.rooms.delete(room);
    }
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
