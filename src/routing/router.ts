// Who gets a message. The router keeps the node's local index (users,
// rooms, watchers → local sessions) and reaches other nodes through the bus.
//
//   sender ──► Router.sendDirect ──► local sessions of the recipient (direct)
//                    │
//                    └──► bus.publish("u:<user>" | "d:<user>/<device>", envelope)
//                               │
//           other nodes subscribed to that channel (those holding a device)
//                               └──► BusLink.onEnvelope ──► their local sessions
//
// Delivery: local recipients get the frame synchronously; remote ones once the
// bus hands it to their node (at most once). The ack means "handed to the
// recipient's node": a local delivery, or a publish that reached at least one
// other node. A node ignores its own envelopes (it delivered locally already).
// Order per (sender, recipient) holds because both paths are FIFO.
import { channels, type Bus } from '../bus/bus';
import { CLOSE } from '../errors/codes';
import type { Logger } from '../log/logger';
import type { Metrics } from '../metrics/metrics';
import type { PresenceStore, StoreChanges } from '../presence/presence';
import type { SignalType } from '../protocol/app-codec';
import { encode, type Member, type PresenceStatus } from '../protocol/server-frames';
import { allMaybe, chainMaybe, mapMaybe, type MaybePromise } from '../util/maybe-promise';
import { BusLink, Publication } from './bus-link';
import { LocalIndex, type DirectOutcome, type LocalState, type Recipient } from './local-index';
import type { Subscriptions } from './subscriptions';

export type { DirectOutcome, Recipient };
export type EventTarget = { user: string; device?: string } | { room: string } | { broadcast: true };

/** Raised when the bus failed and the operation could not be completed cluster-wide. */
export class BusUnavailableError extends Error {
  constructor(cause: unknown) {
    super('cluster bus unavailable', { cause });
    this.name = 'BusUnavailableError';
  }
}

export interface RouterDeps {
  nodeId: string;
  bus: Bus;
  presence: PresenceStore;
  logger: Logger;
  metrics: Metrics;
}

export class Router {
  private readonly nodeId: string;
  private readonly presence: PresenceStore;
  private readonly logger: Logger;
  private readonly metrics: Metrics;
  /** The bus side: publishing envelopes and delivering other nodes' (bus-link.ts). */
  private readonly link: BusLink;
  private readonly subscriptions: Subscriptions;

  private readonly local = new LocalIndex();

  constructor(deps: RouterDeps) {
    this.nodeId = deps.nodeId;
    this.presence = deps.presence;
    this.logger = deps.logger;
    this.metrics = deps.metrics;
    this.link = new BusLink({ nodeId: deps.nodeId, bus: deps.bus, local: this.local, logger: deps.logger, metrics: deps.metrics });
    this.subscriptions = this.link.subscriptions;
    deps.presence.onChanges((changes) => void this.announceStoreChanges(changes));
  }

  /** Every node listens to broadcasts. */
  async start(): Promise<void> {
    await this.subscriptions.add(channels.broadcast());
  }

  // ── sessions ────────────────────────────────────────────────────────────

  /**
   * Registers a new local session: cluster-wide uniqueness of (user, device), presence, its
   * channels. Done at once with the in-process bus and presence: the welcome then leaves with the
   * upgrade's response, in the same write (bench W5).
   */
  attach(r: Recipient): MaybePromise<void> {
    this.local.add(r);
    const deviceChannel = channels.device(r.user, r.device);
    const subscribing = allMaybe([this.subscriptions.add(channels.user(r.user)), this.subscriptions.add(deviceChannel)]);
    if (!(subscribing instanceof Promise)) return this.register(r, deviceChannel);
    // During an outage the subscribes wait in the subscriber's queue and apply when the bus returns;
    // the connection is welcomed now rather than held (the store retries the registration).
    if (this.link.isUp()) return subscribing.then(() => this.register(r, deviceChannel));
    subscribing.catch((error: unknown) => this.logger.warn({ err: error }, 'subscribe failed during a bus outage'));
    return this.register(r, deviceChannel);
  }

  private register(r: Recipient, deviceChannel: string): MaybePromise<void> {
    return chainMaybe(this.presence.addDevice({ user: r.user, device: r.device, session: r.id, node: this.nodeId }), (added) => {
      // The older connection of the same device loses (SPEC §3.1). It is kicked only now that the
      // store names the new one as holder, so its goodbye does not report the user offline.
      for (const other of this.local.recipientsOf(r.user, r.device)) if (other !== r) other.kick(CLOSE.replaced);
      const kicked =
        added.replaced !== undefined && added.replaced.node !== this.nodeId
          ? this.link.publish(deviceChannel, { k: 'kick', o: this.nodeId, s: added.replaced.session }, '')
          : undefined;
      return chainMaybe(kicked, () => (added.wentOnline ? this.announcePresence(r.user, 'online') : undefined));
    });
  }

  private readonly detaching = new Set<Promise<void>>();
  private heldOffline: Set<string> | undefined;

  /** Resolves when every detach in flight has finished (shutdown waits for it: no ghost users). */
  async settled(): Promise<void> {
    while (this.detaching.size > 0) await Promise.all(this.detaching);
  }

  /** Removes a closed session everywhere: rooms (member_left), watches, presence. Never rejects; done at once on one node. */
  detach(r: Recipient): MaybePromise<void> {
    const done = this.detachNow(r);
    if (!(done instanceof Promise)) return;
    const detaching: Promise<void> = done.finally(() => this.detaching.delete(detaching));
    this.detaching.add(detaching);
    return detaching;
  }

  private detachNow(r: Recipient): MaybePromise<void> {
    const state = this.local.remove(r);
    if (state === undefined) return;
    this.subscriptions.remove(channels.user(r.user));
    this.subscriptions.remove(channels.device(r.user, r.device));
    for (const user of [...(state.watching ?? [])]) this.dropWatch(r, state, user);
    const rooms = [...(state.rooms ?? [])];
    // Presence is repaired by the store itself (leases expire); log and go on.
    const warn = (error: unknown) => this.logger.warn({ err: error }, 'detach could not update cluster state');
    try {
      const left = rooms.length === 0 ? undefined : Promise.all(rooms.map((room) => this.leaveRoomNow(r, state, room)));
      const done = chainMaybe(left, () =>
        chainMaybe(this.presence.removeDevice({ user: r.user, device: r.device, session: r.id, node: this.nodeId }), (removed) =>
          removed.wentOffline ? this.announcePresence(r.user, 'offline') : undefined,
        ),
      );
      return done instanceof Promise ? done.catch(warn) : undefined;
    } catch (error) {
      warn(error);
    }
  }

  // ── direct signaling (SPEC §3.2) ────────────────────────────────────────

  /**
   * Tells the sender the outcome (`from.relayed`): at once when no other node can hold the
   * recipient (one node on the in-process bus), else when the bus answers (`DirectSignal`).
   */
  sendDirect(from: Recipient, type: SignalType, to: string, device: string | undefined, payloadJson: string | undefined, id: string | undefined): void {
    const started = performance.now();
    const frame = encode.signal(type, from.senderJson, payloadJson);
    let delivered = 0;
    for (const target of this.local.devicesOf(to)) {
      if (target === from || (device !== undefined && target.device !== device)) continue;
      target.deliver(frame, type);
      delivered++;
    }
    if (delivered > 0) this.metrics.deliveredLocal.observe((performance.now() - started) / 1000);
    const channel = device === undefined ? channels.user(to) : channels.device(to, device);
    const signal = new DirectSignal(this.metrics, from, id, to, started, delivered > 0);
    this.link.publishThen(channel, { k: 'dm', o: this.nodeId, s: from.id, t: type }, frame, signal);
  }

  // ── rooms (SPEC §3.3) ───────────────────────────────────────────────────

  isMember(r: Recipient, room: string): boolean {
    return this.local.state(r)?.rooms?.has(room) ?? false;
  }

  roomCount(r: Recipient): number {
    return this.local.state(r)?.rooms?.size ?? 0;
  }

  /** Joins; resolves with every member (the new one included). Throws BusUnavailableError (membership rolled back). */
  async joinRoom(r: Recipient, room: string): Promise<Member[]> {
    const state = this.local.state(r);
    if (state === undefined) return [];
    // Subscribing again is answered with the current members and announced to nobody.
    if (state.rooms?.has(room) === true) return this.presence.joinRoom(room, { user: r.user, device: r.device, session: r.id, node: this.nodeId });
    // Local state first and synchronously: a publish right after subscribe must see the membership.
    this.local.join(r, state, room);
    const channel = channels.room(room);
    let members: Member[];
    try {
      // While the bus is down a subscribe would wait in the client's queue; answer `unavailable` now.
      if (!this.link.isUp()) throw new Error('bus down');
      await this.subscriptions.add(channel);
      members = await this.presence.joinRoom(room, { user: r.user, device: r.device, session: r.id, node: this.nodeId });
    } catch (error) {
      if (this.local.leave(r, state, room)) this.subscriptions.remove(channel);
      throw new BusUnavailableError(error);
    }
    await this.sendToRoom(r, room, encode.memberJoined(room, { user: r.user, device: r.device }), 'member_joined');
    return members;
  }

  /** Leaves at once locally; throws BusUnavailableError when the cluster could not be told (it is retried by the store). */
  async leaveRoom(r: Recipient, room: string): Promise<void> {
    const state = this.local.state(r);
    if (state?.rooms?.has(room) !== true) return;
    try {
      await this.leaveRoomNow(r, state, room);
    } catch (error) {
      throw new BusUnavailableError(error);
    }
  }

  /** Sends a room message to every other member on every node; false when the bus failed. */
  publishToRoom(from: Recipient, room: string, payloadJson: string): MaybePromise<boolean> {
    return this.sendToRoom(from, room, encode.roomMessage(room, from.senderJson, payloadJson), 'message');
  }

  private async leaveRoomNow(r: Recipient, state: LocalState, room: string): Promise<void> {
    this.local.leave(r, state, room);
    try {
      await this.presence.leaveRoom(room, r.id);
      await this.sendToRoom(r, room, encode.memberLeft(room, { user: r.user, device: r.device }), 'member_left');
    } finally {
      this.subscriptions.remove(channels.room(room));
    }
  }

  /** Room traffic to every member on every node but `from` (undefined: the server speaks, nobody is excluded). */
  private sendToRoom(from: Recipient | undefined, room: string, frame: string, type: string): MaybePromise<boolean> {
    const started = performance.now();
    for (const member of this.local.membersOf(room)) if (member !== from) member.deliver(frame, type);
    this.metrics.deliveredLocal.observe((performance.now() - started) / 1000);
    const remote = this.link.publish(channels.room(room), { k: 'room', o: this.nodeId, s: from?.id ?? '', t: type }, frame);
    return mapMaybe(remote, (count) => count !== undefined);
  }

  // ── presence (SPEC §3.4) ────────────────────────────────────────────────

  isWatching(r: Recipient, user: string): boolean {
    return this.local.state(r)?.watching?.has(user) ?? false;
  }

  watchCount(r: Recipient): number {
    return this.local.state(r)?.watching?.size ?? 0;
  }

  /** Starts watching; resolves with the current state of each user. Throws BusUnavailableError. */
  async watch(r: Recipient, users: readonly string[]): Promise<Record<string, PresenceStatus>> {
    const state = this.local.state(r);
    if (state === undefined) return {};
    const added = users.filter((u) => state.watching?.has(u) !== true);
    for (const user of added) this.local.watch(r, state, user);
    try {
      if (!this.link.isUp()) throw new Error('bus down');
      await allMaybe(added.map((user) => this.subscriptions.add(channels.presence(user))));
      return await this.presence.status(users);
    } catch (error) {
      for (const user of added) this.dropWatch(r, state, user);
      throw new BusUnavailableError(error);
    }
  }

  unwatch(r: Recipient, users: readonly string[]): void {
    const state = this.local.state(r);
    if (state !== undefined) for (const user of users) this.dropWatch(r, state, user);
  }

  async status(users: readonly string[]): Promise<Record<string, PresenceStatus>> {
    try {
      return await this.presence.status(users);
    } catch (error) {
      throw new BusUnavailableError(error);
    }
  }

  private dropWatch(r: Recipient, state: LocalState, user: string): void {
    if (this.local.unwatch(r, state, user)) this.subscriptions.remove(channels.presence(user));
  }

  /**
   * Drain: this node's users are about to reconnect elsewhere. Their "offline" is held back
   * and announced at the end only for those still offline, so a rolling deploy does not make
   * every watcher see an offline/online flap for every user (no presence storm).
   */
  beginDrain(): void {
    this.heldOffline ??= new Set();
  }

  /** Announces the held-back offlines of users who did not come back within `graceMs`. */
  async finishDrain(graceMs: number): Promise<void> {
    const held = this.heldOffline;
    this.heldOffline = undefined;
    if (held === undefined || held.size === 0) return;
    if (graceMs > 0) await new Promise((resolve) => setTimeout(resolve, graceMs));
    try {
      const users = [...held];
      for (let i = 0; i < users.length; i += 100) {
        const states = await this.presence.status(users.slice(i, i + 100));
        for (const [user, status] of Object.entries(states)) if (status === 'offline') await this.announcePresence(user, 'offline');
      }
    } catch (error) {
      this.logger.warn({ err: error, users: held.size }, 'could not announce offline users at the end of the drain');
    }
  }

  private announcePresence(user: string, status: PresenceStatus): MaybePromise<void> {
    if (status === 'offline' && this.heldOffline !== undefined) {
      this.heldOffline.add(user);
      return;
    }
    const channel = channels.presence(user);
    // Nobody watches on this node and no other node can: not even the frame is built (every connect and disconnect asks).
    if (!this.local.isWatched(user) && !this.link.othersMayListen(channel)) return;
    const frame = encode.presenceChange(user, status);
    for (const watcher of this.local.watchersOf(user)) watcher.deliver(frame, 'presence');
    return mapMaybe(this.link.publish(channel, { k: 'pres', o: this.nodeId }, frame), () => undefined);
  }

  /** Announces what the store changed by itself: a dead node reaped, or this node's state restored. */
  private async announceStoreChanges(changes: StoreChanges): Promise<void> {
    for (const user of changes.online) await this.announcePresence(user, 'online');
    for (const user of changes.offline) await this.announcePresence(user, 'offline');
    for (const { room, user, device } of changes.left) await this.sendToRoom(undefined, room, encode.memberLeft(room, { user, device }), 'member_left');
  }

  // ── server events (SPEC §4) ─────────────────────────────────────────────

  /** Delivers an `event` frame cluster-wide. Throws BusUnavailableError when the bus failed. */
  async publishEvent(target: EventTarget, event: string, payload: unknown): Promise<void> {
    const frame = encode.event(event, payload);
    let local: Iterable<Recipient>;
    let channel: string;
    if ('broadcast' in target) {
      local = this.local.all();
      channel = channels.broadcast();
    } else if ('room' in target) {
      local = this.local.membersOf(target.room);
      channel = channels.room(target.room);
    } else {
      local = this.local.recipientsOf(target.user, target.device);
      channel = target.device === undefined ? channels.user(target.user) : channels.device(target.user, target.device);
    }
    for (const r of local) r.deliver(frame, 'event');
    if ((await this.link.publish(channel, { k: 'event', o: this.nodeId }, frame)) === undefined)
      throw new BusUnavailableError(new Error('publish failed'));
  }
}

/**
 * A direct signal waiting for the bus, and what its sender is told then. One object per message
 * in flight: it lives until Redis replies, a turn or more under load, so it survives young-
 * generation GCs. A promise chain, then closures and their contexts (one per layer) were most of
 * what those collections copied on a busy sending node (bench W2, 1000 pairs: ~250 B per message
 * in flight, now one object of ~88 B; heap snapshots).
 */
class DirectSignal extends Publication {
  constructor(
    private readonly metrics: Metrics,
    private readonly from: Recipient,
    private readonly id: string | undefined,
    private readonly to: string,
    private readonly started: number,
    private readonly deliveredLocally: boolean,
  ) {
    super();
  }

  reached(remote: number | undefined): void {
    if (remote === undefined) return this.from.relayed(this.deliveredLocally ? 'delivered' : 'unavailable', this.id, this.to);
    if (remote > 0) this.metrics.deliveredRemote.observe((performance.now() - this.started) / 1000);
    this.from.relayed(this.deliveredLocally || remote > 0 ? 'delivered' : 'peer_offline', this.id, this.to);
  }
}
