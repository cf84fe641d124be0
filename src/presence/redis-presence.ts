// Presence and room membership in Redis for a cluster: what this node asserts,
// and keeping Redis in step with it. The layout of one entry and its fencing
// are in leased-entries.ts; the node's lease in node-lease.ts, and its
// heartbeat, shared with the tunnel registry, in lease-keeper.ts.
//
//   connect/join ──► local intent ──► LeasedEntries write ──► result to the router
//                         │ (write failed: Redis down)
//                         └──► next heartbeat: sync ──► StoreChanges to the router
//
// This node keeps what it asserts (its live devices and memberships). A write
// that fails during an outage is not queued: the next heartbeat that reaches
// Redis writes the devices Redis has not got (`unsynced`), compares the
// lease's index with the live sessions to remove what a lost goodbye left
// (`staleMayExist`), and reports what it changed. The memory used during an
// outage is bounded by the live sessions, however long it lasts.
//
// A lost lease (Redis restarted empty, or peers reaped this node while it was
// cut off) is a restore: everything is written again under a new lease id,
// resuming where the last heartbeat stopped, and what Redis had lost is
// announced again (online, member_joined). A restored device yields to a
// newer connection of the same device that registered meanwhile.
//
// Shutdown removes the node's entries, then the keeper releases its lease;
// when it cannot, the lease is left to expire and a survivor reaps.
import type { RedisClient } from '../bus/redis-clients';
import type { Logger } from '../log/logger';
import type { Member, PresenceStatus } from '../protocol/server-frames';
import type { MaybePromise } from '../util/maybe-promise';
import { asError, writeInBatches } from './batches';
import type { LeaseHolder, LeaseKeeper } from './lease-keeper';
import { LeasedEntries, type DeviceWritten } from './leased-entries';
import { isEmpty, noChanges, statusRecord, type AddResult, type DeviceConnection, type PresenceStore, type StoreChanges } from './presence';

export interface RedisPresenceOptions {
  redis: RedisClient;
  prefix: string;
  /** The node's lease, which presence's entries hang on. */
  lease: LeaseKeeper;
  logger: Logger;
}

/** A live device of this node, and whether Redis acknowledged it once (then a rewrite is a restore). */
interface LocalDevice {
  readonly conn: DeviceConnection;
  registered: boolean;
}

export class RedisPresence implements PresenceStore, LeaseHolder {
  readonly name = 'presence';
  private readonly entries: LeasedEntries;
  private readonly lease: LeaseKeeper;
  private readonly logger: Logger;
  private readonly listeners: ((changes: StoreChanges) => MaybePromise<void>)[] = [];
  /** session → this node's live device. */
  private readonly devices = new Map<string, LocalDevice>();
  /** session → room → member: this node's memberships (set before they are written). */
  private readonly rooms = new Map<string, Map<string, Member>>();
  /** Sessions whose device Redis has not got (a failed write, or a lost lease). */
  private readonly unsynced = new Set<string>();
  /** Memberships to write again after a lost lease: session → rooms. */
  private readonly unsyncedRooms = new Map<string, Set<string>>();
  /** A write failed that may have left an entry behind, or could not remove one. */
  private staleMayExist = false;
  /** A write or a heartbeat failed; the next heartbeat that succeeds reports `recovered`. */
  private outage = false;

  constructor(options: RedisPresenceOptions) {
    this.logger = options.logger;
    this.entries = new LeasedEntries(options.redis, options.prefix);
    this.lease = options.lease;
  }

  start(): Promise<void> {
    return this.lease.start(this);
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
      if (written?.replaced === undefined) return { wentOnline: written?.wentOnline ?? false };
      return { wentOnline: written.wentOnline, replaced: written.replaced };
    } catch (error) {
      // Registered by the next heartbeat that reaches Redis; the write may have landed, too.
      if (this.devices.get(conn.session) === local) this.unsynced.add(conn.session);
      this.failed();
      throw error;
    }
  }

  /** Undefined when the session went away before its entry was written. */
  private async writeDevice(local: LocalDevice): Promise<DeviceWritten | undefined> {
    const written = await this.entries.addDevice(this.lease.id, local.conn, local.registered ? 'restore' : 'fresh', () => this.devices.get(local.conn.session) === local);
    if (written !== undefined) local.registered = true;
    return written;
  }

  async removeDevice(conn: DeviceConnection): Promise<{ wentOffline: boolean }> {
    this.devices.delete(conn.session);
    this.unsynced.delete(conn.session);
    try {
      return { wentOffline: await this.entries.removeDevice(this.lease.id, conn.user, conn.device, conn.session) };
    } catch (error) {
      this.failed();
      throw error;
    }
  }

  async status(users: readonly string[]): Promise<Record<string, PresenceStatus>> {
    const online = await this.entries.online(users);
    const out = statusRecord();
    users.forEach((user, i) => (out[user] = online[i] === true ? 'online' : 'offline'));
    return out;
  }

  // ── rooms ───────────────────────────────────────────────────────────────

  members(room: string): Promise<Member[]> {
    return this.entries.members(room);
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

  private writeMembership(session: string, room: string, member: Member): ReturnType<LeasedEntries['joinRoom']> {
    return this.entries.joinRoom(this.lease.id, room, session, member, () => this.rooms.get(session)?.get(room) === member);
  }

  async leaveRoom(room: string, member: Member & { session: string }): Promise<boolean> {
    this.forgetRoom(member.session, room);
    this.unsyncedRooms.get(member.session)?.delete(room);
    try {
      return await this.entries.leaveRoom(this.lease.id, room, member.session, member);
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

  // ── the lease's heartbeat (lease-keeper.ts): deferred writes, restore, reaping ──

  /** Redis lost this node's state (a restart) or a peer reaped it: everything is written again, under the new lease. */
  leaseLost(): void {
    this.logger.warn({ devices: this.devices.size, memberships: this.rooms.size }, "this node's lease was lost; registering its connections again");
    // Each is written in restore mode if Redis had acknowledged it once: it then yields to a newer
    // connection of its device that registered meanwhile.
    for (const session of this.devices.keys()) this.unsynced.add(session);
    for (const [session, rooms] of this.rooms) this.unsyncedRooms.set(session, new Set(rooms.keys()));
    // What the old lease's index names is the reapers' now; this lease's index starts empty.
    this.staleMayExist = false;
    this.outage = true;
  }

  unreachable(): void {
    this.outage = true;
  }

  /** The heartbeat's part: what an outage deferred, then `recovered` once all of it is done. */
  async sync(): Promise<void> {
    try {
      await this.syncEntries();
    } catch (error) {
      this.outage = true;
      throw error;
    }
    // Watchers re-read their users' states only once peers had a heartbeat to write theirs again:
    // earlier, a user who stayed on a peer that has not renewed yet would be told offline, then online.
    if (this.outage && this.lease.upForAHeartbeat) {
      this.outage = false;
      await this.emit({ ...noChanges(), recovered: true });
    }
  }

  /**
   * Writes what Redis has not got and removes what a lost goodbye left, reporting each change.
   * Resumable: what is written is crossed off, so a heartbeat that fails mid-way is continued by
   * the next one rather than started over or abandoned.
   */
  private async syncEntries(): Promise<void> {
    const changes = noChanges();
    try {
      // One write that fails (a bad key) does not hold up the others: what failed stays for the
      // next heartbeat, and the first failure is raised once all were tried.
      let failure: Error | undefined;
      const note = (error: unknown) => void (failure ??= asError(error));
      await writeInBatches(this.unsynced, (session) => this.syncDevice(session, changes)).catch(note);
      for (const [session, rooms] of [...this.unsyncedRooms]) {
        await writeInBatches(rooms, (room) => this.syncMembership(session, room, changes)).catch(note);
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
    await this.entries.scanDevices(lease, async (user, device, session) => {
      if (!this.devices.has(session) && (await this.entries.removeDevice(lease, user, device, session))) changes.offline.push(user);
    });
    await this.entries.scanRooms(lease, async (room, session, member) => {
      if (this.rooms.get(session)?.has(room) !== true && (await this.entries.leaveRoom(lease, room, session, member))) changes.left.push({ room, ...member });
    });
  }

  /** Removes what an expired lease held, and reports it. */
  async reap(lease: string): Promise<void> {
    const changes = noChanges();
    try {
      await this.entries.scanRooms(lease, async (room, session, member) => {
        if (await this.entries.leaveRoom(lease, room, session, member)) changes.left.push({ room, ...member });
      });
      await this.entries.scanDevices(lease, async (user, device, session) => {
        if (await this.entries.removeDevice(lease, user, device, session)) changes.offline.push(user);
      });
    } finally {
      await this.emit(changes);
    }
  }

  // ── shutdown ────────────────────────────────────────────────────────────

  /**
   * Clean exit, after the drain detached every session: a last try at what an outage left, then
   * the lease may go — but only once nothing is left under it. Otherwise (sessions still open at
   * SHUTDOWN_TIMEOUT_MS, Redis down) the lease is left to expire and a survivor reaps it.
   */
  close(): Promise<void> {
    return this.lease.leave(this, async () => {
      try {
        await this.syncEntries();
        const indexed = await this.entries.indexed(this.lease.id);
        if (this.devices.size === 0 && this.rooms.size === 0 && indexed === 0) return true;
        this.logger.warn({ devices: this.devices.size, indexed }, 'connections remain in Redis; leaving the lease to expire so that a peer reaps them');
      } catch (error) {
        this.logger.warn({ err: error }, 'could not leave Redis cleanly; the lease will expire and a peer reaps what is left');
      }
      return false;
    });
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
