// The Redis layout of presence: one device or room membership at a time,
// each held under a lease (node-lease.ts). How an entry is written and
// removed lives here; when, and for whom, is redis-presence.ts's business.
//
//   {u:<user>}devices     HASH device → "<session>|<lease>"           (Lua: online/offline, takeover)
//   {r:<room>}members     HASH session → "<user>/<device>/<lease>"
//   {n:<lease>}devices    SET  "<user>/<device>/<session>"            what a lease holds, for reaping
//   {n:<lease>}rooms      SET  "<room>/<session>/<user>/<device>"
//
// - The lease's index is written before the entry it names (and removed after
//   it), so a reaper always finds everything a dead lease holds.
// - Every removal is fenced: it removes an entry only if the entry still names
//   the session and the lease it means (a replaced session's goodbye, or a
//   reaper of an old lease, removes nothing of its successor's).
// - Between the index and the entry, the writer is asked whether it still
//   wants the entry: a goodbye issued meanwhile went to Redis first, and
//   nothing may be written after it.
// Keys carry hash tags, so on Redis Cluster each script touches one slot.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RedisClient } from '../bus/redis-clients';
import type { Member } from '../protocol/server-frames';
import { scanSet } from './batches';
import { NodeLease } from './node-lease';
import type { DeviceConnection } from './presence';

interface Scripts {
  sbAddDevice(key: string, device: string, holder: string, mode: 'fresh' | 'restore'): Promise<[number, string | null, number]>;
  sbRemoveDevice(key: string, device: string, holder: string): Promise<number>;
  sbJoinRoom(key: string, session: string, member: string): Promise<[number, string[]]>;
  sbLeaveRoom(key: string, session: string, member: string): Promise<number>;
}

const lua = (name: string) => readFileSync(join(__dirname, 'lua', `${name}.lua`), 'utf8');

/** What writing a device did. */
export interface DeviceWritten {
  /** The user had no device before. */
  wentOnline: boolean;
  /** Restore mode only: another session holds the device (it connected later); nothing was written. */
  lost: boolean;
  /** The other session this write replaced. */
  replaced?: { session: string; node: string };
}

export class LeasedEntries {
  private readonly redis: RedisClient & Scripts;

  constructor(
    redis: RedisClient,
    private readonly prefix: string,
  ) {
    redis.defineCommand('sbAddDevice', { numberOfKeys: 1, lua: lua('add-device') });
    redis.defineCommand('sbRemoveDevice', { numberOfKeys: 1, lua: lua('remove-device') });
    redis.defineCommand('sbJoinRoom', { numberOfKeys: 1, lua: lua('join-room') });
    redis.defineCommand('sbLeaveRoom', { numberOfKeys: 1, lua: lua('leave-room') });
    this.redis = redis as RedisClient & Scripts;
  }

  private userKey = (user: string) => `${this.prefix}{u:${user}}devices`;
  private roomKey = (room: string) => `${this.prefix}{r:${room}}members`;
  private devicesIndex = (lease: string) => `${this.prefix}{n:${lease}}devices`;
  private roomsIndex = (lease: string) => `${this.prefix}{n:${lease}}rooms`;

  /**
   * Writes a device under `lease` ("restore": only if the device is free or still this session's).
   * Undefined when `wanted` said no between the index and the entry.
   */
  async addDevice(lease: string, conn: DeviceConnection, mode: 'fresh' | 'restore', wanted: () => boolean): Promise<DeviceWritten | undefined> {
    const { user, device, session } = conn;
    await this.redis.sadd(this.devicesIndex(lease), `${user}/${device}/${session}`);
    if (!wanted()) return undefined;
    const [wentOnline, previous, lost] = await this.redis.sbAddDevice(this.userKey(user), device, `${session}|${lease}`, mode);
    const written: DeviceWritten = { wentOnline: wentOnline === 1, lost: lost === 1 };
    if (previous !== null && lost !== 1) {
      const [previousSession = '', previousLease = ''] = previous.split('|');
      if (previousSession !== session) written.replaced = { session: previousSession, node: NodeLease.nodeOf(previousLease) };
    }
    return written;
  }

  /** Fenced removal of a device held under `lease`, then its index entry; whether the user went offline. */
  async removeDevice(lease: string, user: string, device: string, session: string): Promise<boolean> {
    const wentOffline = await this.redis.sbRemoveDevice(this.userKey(user), device, `${session}|${lease}`);
    await this.redis.srem(this.devicesIndex(lease), `${user}/${device}/${session}`);
    return wentOffline === 1;
  }

  /** Whether each user has a device (one EXISTS per user: on Redis Cluster each is in its own slot). */
  async online(users: readonly string[]): Promise<boolean[]> {
    return (await Promise.all(users.map((user) => this.redis.exists(this.userKey(user))))).map((count) => count === 1);
  }

  async members(room: string): Promise<Member[]> {
    return (await this.redis.hvals(this.roomKey(room))).map(parseMember);
  }

  /** Writes a membership under `lease`; undefined when `wanted` said no between the index and the entry. */
  async joinRoom(lease: string, room: string, session: string, member: Member, wanted: () => boolean): Promise<{ added: boolean; members: Member[] } | undefined> {
    await this.redis.sadd(this.roomsIndex(lease), `${room}/${session}/${member.user}/${member.device}`);
    if (!wanted()) return undefined;
    const [added, values] = await this.redis.sbJoinRoom(this.roomKey(room), session, `${member.user}/${member.device}/${lease}`);
    return { added: added === 1, members: values.map(parseMember) };
  }

  /** Fenced removal of a membership held under `lease`, then its index entry; whether it was removed. */
  async leaveRoom(lease: string, room: string, session: string, member: Member): Promise<boolean> {
    const removed = await this.redis.sbLeaveRoom(this.roomKey(room), session, `${member.user}/${member.device}/${lease}`);
    await this.redis.srem(this.roomsIndex(lease), `${room}/${session}/${member.user}/${member.device}`);
    return removed === 1;
  }

  /** Visits every device a lease's index names. */
  scanDevices(lease: string, visit: (user: string, device: string, session: string) => Promise<void>): Promise<void> {
    return scanSet(this.redis, this.devicesIndex(lease), (entry) => {
      const [user = '', device = '', session = ''] = entry.split('/');
      return visit(user, device, session);
    });
  }

  /** Visits every membership a lease's index names. */
  scanRooms(lease: string, visit: (room: string, session: string, member: Member) => Promise<void>): Promise<void> {
    return scanSet(this.redis, this.roomsIndex(lease), (entry) => {
      const [room = '', session = '', user = '', device = ''] = entry.split('/');
      return visit(room, session, { user, device });
    });
  }

  /** How many entries a lease's index still names. */
  async indexed(lease: string): Promise<number> {
    const [devices, rooms] = await Promise.all([this.redis.scard(this.devicesIndex(lease)), this.redis.scard(this.roomsIndex(lease))]);
    return devices + rooms;
  }
}

function parseMember(value: string): Member {
  const [user = '', device = ''] = value.split('/');
  return { user, device };
}
