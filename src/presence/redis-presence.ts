// Presence and room membership in Redis, every entry hung on its node's lease
// (node-lease.ts).
//
//   {u:<user>}devices     HASH device → "<session>|<lease>"           (Lua: online/offline, takeover)
//   {r:<room>}members     HASH session → "<user>/<device>/<lease>"
//   {n:<lease>}devices    SET  "<user>/<device>/<session>"            what a lease holds, for reaping
//   {n:<lease>}rooms      SET  "<room>/<session>/<user>/<device>"
//
// Nothing outlives its owner:
// - the lease's index is written before the entry it names (and removed after
//   it), so a reaper always finds everything a dead lease holds;
// - every removal is fenced: it removes an entry only if the entry still names
//   the session and the lease it means (a replaced session's goodbye, or a
//   reaper of an old lease, removes nothing of its successor's);
// - shutdown removes the node's entries, then its lease; when it cannot, it
//   leaves the lease to expire and a survivor reaps.
//
// This node keeps what it asserts (its live devices and memberships). A write
// that fails during an outage is not queued: the next heartbeat that reaches
// Redis writes the devices Redis has not got (`unsynced`), compares the
// lease's index with the live sessions to remove what a lost goodbye left
// (`staleMayExist`), and reports what it changed, so the memory used during an
// outage is bounded by the live sessions, however long it lasts. A lost lease
// is a restore: everything is written again under a new lease id, resuming
// where the last heartbeat stopped, and memberships Redis had lost are
// announced again (member_joined).
//
// Keys carry hash tags, so on Redis Cluster each script touches one slot.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RedisClient } from '../bus/redis-clients';
import type { Logger } from '../log/logger';
import type { Member, PresenceStatus } from '../protocol/server-frames';
import type { MaybePromise } from '../util/maybe-promise';
import { NodeLease } from './node-lease';
import { isEmpty, noChanges, statusRecord, type AddResult, type DeviceConnection, type PresenceStore, type StoreChanges } from './presence';

/** The lease is this part of PRESENCE_TTL_MS, renewed every HEARTBEAT_FRACTION of it: expiry plus one reaper pass fit in the TTL. */
const LEASE_FRACTION = 2 / 3;
const HEARTBEAT_FRACTION = 1 / 4;
/** Leases claimed per reaper pass, and entries written or scanned per round trip. */
const REAP_BATCH = 16;
const SYNC_BATCH = 200;

interface Scripts {
  sbAddDevice(key: string, device: string, holder: string, mode: 'fresh' | 'restore'): Promise<[number, string | null, number]>;
  sbRemoveDevice(key: string, device: string, holder: string): Promise<number>;
  sbJoinRoom(key: string, session: string, member: string): Promise<[number, string[]]>;
  sbLeaveRoom(key: string, session: string, member: string): Promise<number>;
}

const lua = (name: string) => readFileSync(join(__dirname, 'lua', `${name}.lua`), 'utf8');

export interface RedisPresenceOptions {
  redis: RedisClient;
  prefix: string;
  nodeId: string;
  ttlMs: number;
  logger: Logger;
}

/** A live device of this node, and whether Redis acknowledged it once (then a rewrite is a restore). */
interface LocalDevice {
  readonly conn: DeviceConnection;
  registered: boolean;
}

export class RedisPresence implements PresenceStore {
  private readonly redis: RedisClient & Scripts;
  private readonly prefix: string;
  private readonly heartbeatMs: number;
  private readonly logger: Logger;
  private readonly lease: NodeLease;
  private readonly listeners: ((changes: StoreChanges) => MaybePromise<void>)[] = [];
  /** session → this node's live device. */
  private readonly devices = new Map<string, LocalDevice>();
  /** session → room → member: this node's memberships that Redis acknowledged. */
  private readonly rooms = new Map<string, Map<string, Member>>();
  /** Sessions whose device Redis has not got (a failed write, or a lost lease). */
  private readonly unsynced = new Set<string>();
  /** Memberships to write again after a lost lease: session → rooms. */
  private readonly unsyncedRooms = new Map<string, Set<string>>();
  /** A write failed that may have left an entry behind, or could not remove one. */
  private staleMayExist = false;
  /** A write or a heartbeat failed; the next heartbeat that succeeds reports `recovered`. */
  private outage = false;
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> | undefined;

  constructor(options: RedisPresenceOptions) {
    this.prefix = options.prefix;
    this.heartbeatMs = Math.max(100, Math.round(options.ttlMs * HEARTBEAT_FRACTION));
    this.logger = options.logger;
    const redis = options.redis;
    redis.defineCommand('sbAddDevice', { numberOfKeys: 1, lua: lua('add-device') });
    redis.defineCommand('sbRemoveDevice', { numberOfKeys: 1, lua: lua('remove-device') });
    redis.defineCommand('sbJoinRoom', { numberOfKeys: 1, lua: lua('join-room') });
    redis.defineCommand('sbLeaveRoom', { numberOfKeys: 1, lua: lua('leave-room') });
    this.redis = redis as RedisClient & Scripts;
    this.lease = new NodeLease(redis, options.prefix, options.nodeId, Math.round(options.ttlMs * LEASE_FRACTION));
  }

  private userKey = (user: string) => `${this.prefix}{u:${user}}devices`;
  private roomKey = (room: string) => `${this.prefix}{r:${room}}members`;
  private devicesIndex = (lease: string) => `${this.prefix}{n:${lease}}devices`;
  private roomsIndex = (lease: string) => `${this.prefix}{n:${lease}}rooms`;

  async start(): Promise<void> {
    await this.lease.create();
    this.timer = setInterval(() => void this.heartbeat(), this.heartbeatMs);
    this.timer.unref();
  }

  onChanges(listener: (changes: StoreChanges) => MaybePromise<void>): void {
    this.listeners.push(listener);
  }

  // ── devices ─────────────────────────────────────────────────────────────

  async addDevice(conn: DeviceConnection): Promise<AddResult> {
    const local: LocalDevice = { conn, registered: false };
    this.devices.set(conn.session, local);
    try {
      const written = await this.writeDevice(local);
      return written === undefined ? { wentOnline: false } : addResult(written);
    } catch (error) {
      // Registered by the next heartbeat that reaches Redis; the write may have landed, too.
      if (this.devices.get(conn.session) === local) this.unsynced.add(conn.session);
      this.failed();
      throw error;
    }
  }

  /**
   * Writes a live device: the lease's index first, then the device. Undefined when the session
   * went away meanwhile (its goodbye was issued first, so nothing may be written after it).
   */
  private async writeDevice(local: LocalDevice): Promise<(AddResult & { lost: boolean }) | undefined> {
    const { user, device, session } = local.conn;
    const lease = this.lease.id;
    await this.redis.sadd(this.devicesIndex(lease), `${user}/${device}/${session}`);
    if (this.devices.get(session) !== local) return undefined;
    const [wentOnline, previous, lost] = await this.redis.sbAddDevice(this.userKey(user), device, `${session}|${lease}`, local.registered ? 'restore' : 'fresh');
    local.registered = true;
    const result: AddResult & { lost: boolean } = { wentOnline: wentOnline === 1, lost: lost === 1 };
    if (previous !== null && lost !== 1) {
      const [previousSession = '', previousLease = ''] = previous.split('|');
      if (previousSession !== session) result.replaced = { session: previousSession, node: NodeLease.nodeOf(previousLease) };
    }
    return result;
  }

  async removeDevice(conn: DeviceConnection): Promise<{ wentOffline: boolean }> {
    this.devices.delete(conn.session);
    this.unsynced.delete(conn.session);
    try {
      return { wentOffline: (await this.removeEntry(this.lease.id, conn.user, conn.device, conn.session)) === 1 };
    } catch (error) {
      this.failed();
      throw error;
    }
  }

  /** Fenced removal of a device entry held under `lease`, then its index entry; 1 when the user went offline. */
  private async removeEntry(lease: string, user: string, device: string, session: string): Promise<number> {
    const wentOffline = await this.redis.sbRemoveDevice(this.userKey(user), device, `${session}|${lease}`);
    await this.redis.srem(this.devicesIndex(lease), `${user}/${device}/${session}`);
    return wentOffline;
  }

  async status(users: readonly string[]): Promise<Record<string, PresenceStatus>> {
    const counts = await Promise.all(users.map((user) => this.redis.exists(this.userKey(user))));
    const out = statusRecord();
    users.forEach((user, i) => (out[user] = counts[i] === 1 ? 'online' : 'offline'));
    return out;
  }

  // ── rooms ───────────────────────────────────────────────────────────────

  async members(room: string): Promise<Member[]> {
    return (await this.redis.hvals(this.roomKey(room))).map(parseMember);
  }

  async joinRoom(room: string, member: Member & { session: string; node: string }): Promise<Member[]> {
    const { session } = member;
    const joined: Member = { user: member.user, device: member.device };
    let rooms = this.rooms.get(session);
    if (rooms === undefined) this.rooms.set(session, (rooms = new Map<string, Member>()));
    rooms.set(room, joined);
    try {
      return (await this.writeMembership(session, room, joined))?.members ?? [];
    } catch (error) {
      // A join is the client's request: it fails whole (the router answers `unavailable`).
      if (this.rooms.get(session)?.get(room) === joined) this.forgetRoom(session, room);
      this.failed();
      throw error;
    }
  }

  /** The lease's index first, then the membership; undefined when it was left meanwhile. */
  private async writeMembership(session: string, room: string, member: Member): Promise<{ added: boolean; members: Member[] } | undefined> {
    const lease = this.lease.id;
    await this.redis.sadd(this.roomsIndex(lease), `${room}/${session}/${member.user}/${member.device}`);
    if (this.rooms.get(session)?.get(room) !== member) return undefined;
    const [added, values] = await this.redis.sbJoinRoom(this.roomKey(room), session, `${member.user}/${member.device}/${lease}`);
    return { added: added === 1, members: values.map(parseMember) };
  }

  async leaveRoom(room: string, member: Member & { session: string }): Promise<boolean> {
    this.forgetRoom(member.session, room);
    this.unsyncedRooms.get(member.session)?.delete(room);
    try {
      return (await this.removeMembership(this.lease.id, room, member.session, member)) === 1;
    } catch (error) {
      this.failed();
      throw error;
    }
  }

  private forgetRoom(session: string, room: string): void {
    const rooms = this.rooms.get(session);
    rooms?.delete(room);
    if (rooms?.size === 0) this.rooms.delete(session);
  }

  /** Fenced removal of a membership held under `lease`, then its index entry; 1 when it was removed. */
  private async removeMembership(lease: string, room: string, session: string, member: Member): Promise<number> {
    const removed = await this.redis.sbLeaveRoom(this.roomKey(room), session, `${member.user}/${member.device}/${lease}`);
    await this.redis.srem(this.roomsIndex(lease), `${room}/${session}/${member.user}/${member.device}`);
    return removed;
  }

  // ── heartbeat: lease, deferred writes, reaping ──────────────────────────

  /** Runs one heartbeat at a time; a heartbeat due while one runs is skipped. */
  private heartbeat(): Promise<void> {
    return (this.beating ??= this.beat().finally(() => (this.beating = undefined)));
  }

  private async beat(): Promise<void> {
    try {
      if (!(await this.lease.renew())) this.leaseLost();
      await this.sync();
      if (this.outage) {
        this.outage = false;
        await this.emit({ ...noChanges(), recovered: true });
      }
      await this.reap();
    } catch (error) {
      this.outage = true;
      this.logger.warn({ err: error }, 'presence heartbeat failed');
    }
  }

  /** Redis lost this node's state (a restart) or a peer reaped it: everything is written again, under the new lease. */
  private leaseLost(): void {
    this.logger.warn({ devices: this.devices.size, memberships: this.rooms.size }, "this node's lease was lost; registering its connections again");
    // Each is written in restore mode if Redis had acknowledged it once: it then yields to a newer
    // connection of its device that registered meanwhile.
    for (const session of this.devices.keys()) this.unsynced.add(session);
    for (const [session, rooms] of this.rooms) this.unsyncedRooms.set(session, new Set(rooms.keys()));
    // What the old lease's index names is the reapers' now; this lease's index starts empty.
    this.staleMayExist = false;
    this.outage = true;
  }

  /**
   * Writes what Redis has not got and removes what a lost goodbye left, reporting each change.
   * Resumable: what is written is crossed off, so a heartbeat that fails mid-way is continued by
   * the next one rather than started over or abandoned.
   */
  private async sync(): Promise<void> {
    const changes = noChanges();
    try {
      // One write that fails (a bad key) does not hold up the others: each batch settles whole,
      // what failed stays for the next heartbeat, and the first failure is raised at the end.
      let failure: Error | undefined;
      const settle = async (writes: Promise<void>[]) => {
        for (const result of await Promise.allSettled(writes)) if (result.status === 'rejected') failure ??= asError(result.reason);
      };
      for (const batch of batches(this.unsynced)) await settle(batch.map((session) => this.syncDevice(session, changes)));
      for (const [session, rooms] of [...this.unsyncedRooms]) {
        for (const batch of batches(rooms)) await settle(batch.map((room) => this.syncMembership(session, room, changes)));
        if (rooms.size === 0) this.unsyncedRooms.delete(session);
      }
      if (failure !== undefined) throw failure;
      if (this.staleMayExist) {
        this.staleMayExist = false;
        try {
          await this.removeStale(changes);
        } catch (error) {
          this.staleMayExist = true;
          throw error;
        }
      }
    } finally {
      await this.emit(changes);
    }
  }

  private async syncDevice(session: string, changes: StoreChanges): Promise<void> {
    const local = this.devices.get(session);
    const written = local === undefined ? undefined : await this.writeDevice(local);
    this.unsynced.delete(session);
    if (written === undefined || local === undefined) return;
    if (written.wentOnline) changes.online.push(local.conn.user);
    // A newer connection of the device registered while Redis had lost this one: this one goes.
    if (written.lost) changes.replaced.push(local.conn);
    if (written.replaced !== undefined) changes.replaced.push({ ...local.conn, ...written.replaced });
  }

  private async syncMembership(session: string, room: string, changes: StoreChanges): Promise<void> {
    const member = this.rooms.get(session)?.get(room);
    const written = member === undefined ? undefined : await this.writeMembership(session, room, member);
    this.unsyncedRooms.get(session)?.delete(room);
    if (written?.added === true && member !== undefined) changes.joined.push({ room, ...member, session });
  }

  /** Removes what this lease's index names and no live session asserts (goodbyes lost in an outage). */
  private async removeStale(changes: StoreChanges): Promise<void> {
    const lease = this.lease.id;
    await this.scan(this.devicesIndex(lease), async (entry) => {
      const [user = '', device = '', session = ''] = entry.split('/');
      if (this.devices.has(session)) return;
      if ((await this.removeEntry(lease, user, device, session)) === 1) changes.offline.push(user);
    });
    await this.scan(this.roomsIndex(lease), async (entry) => {
      const [room = '', session = '', user = '', device = ''] = entry.split('/');
      if (this.rooms.get(session)?.has(room) === true) return;
      if ((await this.removeMembership(lease, room, session, { user, device })) === 1) changes.left.push({ room, user, device });
    });
  }

  /** Reaps the expired leases this node claimed: removes what each held and reports it. */
  private async reap(): Promise<void> {
    for (const lease of await this.lease.claimExpired(REAP_BATCH)) {
      this.logger.warn({ deadNode: NodeLease.nodeOf(lease) }, 'reaping a node whose lease expired');
      const changes = noChanges();
      try {
        await this.scan(this.roomsIndex(lease), async (entry) => {
          const [room = '', session = '', user = '', device = ''] = entry.split('/');
          if ((await this.removeMembership(lease, room, session, { user, device })) === 1) changes.left.push({ room, user, device });
        });
        await this.scan(this.devicesIndex(lease), async (entry) => {
          const [user = '', device = '', session = ''] = entry.split('/');
          if ((await this.removeEntry(lease, user, device, session)) === 1) changes.offline.push(user);
        });
        await this.lease.reaped(lease);
      } finally {
        await this.emit(changes);
      }
    }
  }

  /**
   * Visits every member of a set, a batch per round trip (SSCAN: a large index never blocks Redis).
   * Every visit of a batch settles before a failure is raised, so no change made is left unreported.
   */
  private async scan(key: string, visit: (entry: string) => Promise<void>): Promise<void> {
    let cursor = '0';
    do {
      const [next, entries] = await this.redis.sscan(key, cursor, 'COUNT', SYNC_BATCH);
      const failed = (await Promise.allSettled(entries.map(visit))).find((result) => result.status === 'rejected');
      if (failed !== undefined) throw asError(failed.reason);
      cursor = next;
    } while (cursor !== '0');
  }

  // ── shutdown ────────────────────────────────────────────────────────────

  /**
   * Clean exit, after the drain detached every session: a last try at what an outage left, then
   * the lease goes — but only once nothing is left under it. Otherwise (sessions still open at
   * SHUTDOWN_TIMEOUT_MS, Redis down) the lease is left to expire and a survivor reaps it.
   */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.beating;
    try {
      await this.sync();
      const lease = this.lease.id;
      const [devices, rooms] = await Promise.all([this.redis.scard(this.devicesIndex(lease)), this.redis.scard(this.roomsIndex(lease))]);
      if (this.devices.size > 0 || this.rooms.size > 0 || devices + rooms > 0) {
        this.logger.warn({ devices, rooms }, 'connections remain in Redis; leaving the lease to expire so that a peer reaps them');
        return;
      }
      await this.lease.release();
    } catch (error) {
      this.logger.warn({ err: error }, 'could not leave Redis cleanly; the lease will expire and a peer reaps what is left');
    }
  }

  private failed(): void {
    this.staleMayExist = true;
    this.outage = true;
  }

  private async emit(changes: StoreChanges): Promise<void> {
    if (isEmpty(changes)) return;
    for (const listener of this.listeners) await listener(changes);
  }
}

function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}

function addResult({ wentOnline, replaced }: AddResult): AddResult {
  return replaced === undefined ? { wentOnline } : { wentOnline, replaced };
}

function parseMember(value: string): Member {
  const [user = '', device = ''] = value.split('/');
  return { user, device };
}

/** The set's members in arrays of SYNC_BATCH (a snapshot: the set may change while they are written). */
function batches(set: ReadonlySet<string>): string[][] {
  const all = [...set];
  const out: string[][] = [];
  for (let i = 0; i < all.length; i += SYNC_BATCH) out.push(all.slice(i, i + SYNC_BATCH));
  return out;
}
