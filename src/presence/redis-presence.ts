// Presence and room membership in Redis, with node leases.
//
//   {u:<user>}devices     HASH device → "<session>|<node>"      (Lua: online/offline transitions, takeover)
//   {r:<room>}members     HASH session → "<user>/<device>/<node>"
//   {n:<node>}devices     SET  "<user>/<device>/<session>"      what a node holds, for reaping
//   {n:<node>}rooms       SET  "<room>/<session>"
//   nodes                 ZSET node → lease expiry (epoch ms)
//
// Every node renews its lease every LEASE_MS/… (see HEARTBEAT_FRACTION). A node
// that dies without a goodbye stops renewing; the first survivor that sees
// the lease expired claims it (ZREM returns 1 to one node only), removes the
// dead node's devices and memberships, and reports who went offline and who
// left which room, for the router to announce. Leases are shorter than
// PRESENCE_TTL_MS so that expiry plus one reaper pass fits inside it.
//
// Keys carry hash tags, so on Redis Cluster each script touches one slot; the
// per-node index is a separate, best-effort write (it only serves reaping).
// A node reaps only after its own Redis connection has been up for a whole
// lease: after an outage every node needs a moment to renew before its peers
// may judge it dead.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RedisClient } from '../bus/redis-clients';
import type { Logger } from '../log/logger';
import type { Member, PresenceStatus } from '../protocol/server-frames';
import type { AddResult, DeviceConnection, PresenceStore, StoreChanges } from './presence';

const LEASE_FRACTION = 2 / 3;
const HEARTBEAT_FRACTION = 1 / 4;
const REAP_BATCH = 16;

interface Scripts {
  sbAddDevice(key: string, device: string, holder: string): Promise<[number, string | null]>;
  sbRemoveDevice(key: string, device: string, holder: string): Promise<number>;
  sbJoinRoom(key: string, session: string, member: string): Promise<string[]>;
  sbLeaveRoom(key: string, session: string): Promise<string | null>;
}

const lua = (name: string) => readFileSync(join(__dirname, 'lua', `${name}.lua`), 'utf8');

export interface RedisPresenceOptions {
  redis: RedisClient;
  prefix: string;
  nodeId: string;
  ttlMs: number;
  logger: Logger;
}

export class RedisPresence implements PresenceStore {
  private readonly redis: RedisClient & Scripts;
  private readonly prefix: string;
  private readonly nodeId: string;
  private readonly leaseMs: number;
  private readonly heartbeatMs: number;
  private readonly logger: Logger;
  private readonly listeners: ((changes: StoreChanges) => void)[] = [];
  /** What this node registered, to restore it when Redis lost it (restart, or we were reaped). */
  private readonly localDevices = new Map<string, DeviceConnection>();
  private readonly localRooms = new Map<string, Map<string, Member>>();
  private readonly retries: (() => Promise<void>)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private connectedSince: number;
  private registered = false;
  private beating = false;

  constructor(options: RedisPresenceOptions) {
    this.prefix = options.prefix;
    this.nodeId = options.nodeId;
    this.leaseMs = Math.round(options.ttlMs * LEASE_FRACTION);
    this.heartbeatMs = Math.max(100, Math.round(options.ttlMs * HEARTBEAT_FRACTION));
    this.logger = options.logger;
    const redis = options.redis;
    redis.defineCommand('sbAddDevice', { numberOfKeys: 1, lua: lua('add-device') });
    redis.defineCommand('sbRemoveDevice', { numberOfKeys: 1, lua: lua('remove-device') });
    redis.defineCommand('sbJoinRoom', { numberOfKeys: 1, lua: lua('join-room') });
    redis.defineCommand('sbLeaveRoom', { numberOfKeys: 1, lua: lua('leave-room') });
    this.redis = redis as RedisClient & Scripts;
    this.connectedSince = Date.now();
    redis.on('ready', () => (this.connectedSince = Date.now()));
  }

  private userKey = (user: string) => `${this.prefix}{u:${user}}devices`;
  private roomKey = (room: string) => `${this.prefix}{r:${room}}members`;
  private nodeDevicesKey = (node: string) => `${this.prefix}{n:${node}}devices`;
  private nodeRoomsKey = (node: string) => `${this.prefix}{n:${node}}rooms`;
  private get leasesKey() {
    return `${this.prefix}nodes`;
  }

  async start(): Promise<void> {
    await this.heartbeat();
    this.timer = setInterval(() => void this.heartbeat(), this.heartbeatMs);
    this.timer.unref();
  }

  onChanges(listener: (changes: StoreChanges) => void): void {
    this.listeners.push(listener);
  }

  async addDevice(conn: DeviceConnection): Promise<AddResult> {
    this.localDevices.set(conn.session, conn);
    // A retry after an outage must not register a connection that has closed meanwhile.
    const add = async () => (this.localDevices.has(conn.session) ? this.register(conn) : { wentOnline: false });
    return this.orRetryLater(add, (added) => ({ online: added.wentOnline ? [conn.user] : [], offline: [], left: [] }));
  }

  private async register(conn: DeviceConnection): Promise<AddResult> {
    const [wentOnline, previous] = await this.redis.sbAddDevice(this.userKey(conn.user), conn.device, `${conn.session}|${conn.node}`);
    this.index('sadd', this.nodeDevicesKey(conn.node), `${conn.user}/${conn.device}/${conn.session}`);
    const result: AddResult = { wentOnline: wentOnline === 1 };
    if (previous !== null) {
      const [session = '', node = ''] = previous.split('|');
      if (session !== conn.session) result.replaced = { session, node };
    }
    return result;
  }

  async removeDevice(conn: DeviceConnection): Promise<{ wentOffline: boolean }> {
    this.localDevices.delete(conn.session);
    const remove = async () => {
      const wentOffline = await this.redis.sbRemoveDevice(this.userKey(conn.user), conn.device, `${conn.session}|${conn.node}`);
      this.index('srem', this.nodeDevicesKey(conn.node), `${conn.user}/${conn.device}/${conn.session}`);
      return wentOffline === 1;
    };
    const wentOffline = await this.orRetryLater(remove, (offline) => ({ online: [], offline: offline ? [conn.user] : [], left: [] }));
    return { wentOffline };
  }

  async status(users: readonly string[]): Promise<Record<string, PresenceStatus>> {
    const counts = await Promise.all(users.map((user) => this.redis.exists(this.userKey(user))));
    const out: Record<string, PresenceStatus> = {};
    users.forEach((user, i) => (out[user] = counts[i] === 1 ? 'online' : 'offline'));
    return out;
  }

  async joinRoom(room: string, member: Member & { session: string; node: string }): Promise<Member[]> {
    let rooms = this.localRooms.get(member.session);
    if (rooms === undefined) this.localRooms.set(member.session, (rooms = new Map<string, Member>()));
    rooms.set(room, { user: member.user, device: member.device });
    const values = await this.redis.sbJoinRoom(this.roomKey(room), member.session, `${member.user}/${member.device}/${member.node}`);
    this.index('sadd', this.nodeRoomsKey(member.node), `${room}/${member.session}`);
    return values.map(parseMember);
  }

  async leaveRoom(room: string, session: string): Promise<void> {
    const rooms = this.localRooms.get(session);
    rooms?.delete(room);
    if (rooms?.size === 0) this.localRooms.delete(session);
    const leave = async () => {
      // A retry must not undo a later re-join of the same room by the same connection.
      if (this.localRooms.get(session)?.has(room) === true) return null;
      const member = await this.redis.sbLeaveRoom(this.roomKey(room), session);
      this.index('srem', this.nodeRoomsKey(this.nodeId), `${room}/${session}`);
      return member;
    };
    await this.orRetryLater(leave, (member) => ({ online: [], offline: [], left: member === null ? [] : [{ room, ...parseMember(member) }] }));
  }

  /**
   * Runs a write; when Redis fails, queues it for the next successful heartbeat and rethrows.
   * The retry announces what it changed (`changesOf`), so a goodbye or a hello lost in an outage
   * neither leaves a ghost in a Redis that kept its data nor goes unannounced to watchers.
   */
  private async orRetryLater<T>(write: () => Promise<T>, changesOf: (result: T) => StoreChanges): Promise<T> {
    try {
      return await write();
    } catch (error) {
      this.retries.push(async () => this.emit(changesOf(await write())));
      throw error;
    }
  }

  private async runRetries(): Promise<void> {
    for (const retry of this.retries.splice(0)) await retry().catch(() => this.retries.push(retry));
  }


  /** Clean exit: the node's lease and indexes go at once (its sessions were detached by the drain). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    try {
      await Promise.all([
        this.redis.zrem(this.leasesKey, this.nodeId),
        this.redis.del(this.nodeDevicesKey(this.nodeId)),
        this.redis.del(this.nodeRoomsKey(this.nodeId)),
      ]);
    } catch (error) {
      // Redis down at shutdown: the lease expires and a survivor reaps whatever is left.
      this.logger.warn({ err: error }, 'could not remove this node from Redis; it will be reaped');
    }
  }

  // ── leases ──────────────────────────────────────────────────────────────

  private async heartbeat(): Promise<void> {
    if (this.beating) return;
    this.beating = true;
    try {
      const added = await this.redis.zadd(this.leasesKey, Date.now() + this.leaseMs, this.nodeId);
      // A new entry after we had registered: Redis lost our state (restart, failover) or a peer reaped us.
      if (Number(added) === 1 && this.registered) await this.restore();
      this.registered = true;
      await this.runRetries();
      if (Date.now() - this.connectedSince >= this.leaseMs) await this.reap();
    } catch (error) {
      this.logger.warn({ err: error }, 'presence heartbeat failed');
    } finally {
      this.beating = false;
    }
  }

  private async reap(): Promise<void> {
    const dead = await this.redis.zrangebyscore(this.leasesKey, '-inf', Date.now(), 'LIMIT', 0, REAP_BATCH);
    for (const node of dead) {
      if (node === this.nodeId) continue;
      // Only the node whose ZREM removed the lease cleans up, so a dead node is reaped once.
      if ((await this.redis.zrem(this.leasesKey, node)) !== 1) continue;
      this.logger.warn({ deadNode: node }, 'reaping a node whose lease expired');
      this.emit(await this.cleanUp(node));
    }
  }

  private async cleanUp(node: string): Promise<StoreChanges> {
    const changes: StoreChanges = { online: [], offline: [], left: [] };
    const [devices, rooms] = await Promise.all([this.redis.smembers(this.nodeDevicesKey(node)), this.redis.smembers(this.nodeRoomsKey(node))]);
    for (const entry of rooms) {
      const [room = '', session = ''] = entry.split('/');
      const member = await this.redis.sbLeaveRoom(this.roomKey(room), session);
      if (member !== null) changes.left.push({ room, ...parseMember(member) });
    }
    for (const entry of devices) {
      const [user = '', device = '', session = ''] = entry.split('/');
      if ((await this.redis.sbRemoveDevice(this.userKey(user), device, `${session}|${node}`)) === 1) changes.offline.push(user);
    }
    await Promise.all([this.redis.del(this.nodeDevicesKey(node)), this.redis.del(this.nodeRoomsKey(node))]);
    return changes;
  }

  /** Re-registers everything this node holds; users that come back online are announced. */
  private async restore(): Promise<void> {
    this.logger.warn({ devices: this.localDevices.size }, 'restoring this node\'s presence in Redis');
    const changes: StoreChanges = { online: [], offline: [], left: [] };
    for (const conn of [...this.localDevices.values()]) {
      const { wentOnline } = await this.addDevice(conn);
      if (wentOnline) changes.online.push(conn.user);
    }
    for (const [session, rooms] of this.localRooms) {
      for (const [room, member] of rooms) await this.joinRoom(room, { ...member, session, node: this.nodeId });
    }
    this.emit(changes);
  }

  private emit(changes: StoreChanges): void {
    if (changes.online.length + changes.offline.length + changes.left.length === 0) return;
    for (const listener of this.listeners) listener(changes);
  }

  /** Index writes are best effort: a lost one only means a slower or partial reap of a dead node. */
  private index(op: 'sadd' | 'srem', key: string, member: string): void {
    this.redis[op](key, member).catch((error: unknown) => this.logger.debug({ err: error }, 'node index write failed'));
  }
}

function parseMember(value: string): Member {
  const [user = '', device = ''] = value.split('/');
  return { user, device };
}
