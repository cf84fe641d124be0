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
// Order per (sender, recipient device) holds, whether the sender addressed the
// user or the device: local delivery is synchronous, and the bus keeps one
// publisher's order across a user's channels (bus.ts, redis-bus.ts).
//
// A session's cluster state follows the state machine in local-index.ts:
// attach subscribes its channels and registers it in the presence store; a
// registration that resumes after its subscribe registers nothing for a
// session that closed meanwhile, and detach waits for what attach still has in
// flight before it removes the session, so a client that vanishes mid-handshake
// leaves nothing behind and cannot kick its own successor. Rooms (rooms.ts) and
// watches (watches.ts) keep the same rule.
import { channels, type Bus } from '../bus/bus';
import { CLOSE } from '../errors/codes';
import type { Logger } from '../log/logger';
import type { Metrics } from '../metrics/metrics';
import type { DeviceConnection, PresenceStore, StoreChanges } from '../presence/presence';
import type { SignalType } from '../protocol/app-codec';
import type { Envelope } from '../protocol/envelope';
import { encode } from '../protocol/server-frames';
import { allMaybe, chainMaybe, whenReady, type MaybePromise } from '../util/maybe-promise';
import type { AwayKeeper } from '../resume/away-keeper';
import { BusLink, Publication } from './bus-link';
import { BusUnavailableError } from './errors';
import { LocalIndex, type DirectOutcome, type Recipient, type SessionState } from './local-index';
import { Rooms } from './rooms';
import { Watches } from './watches';

export { BusUnavailableError };
export type { DirectOutcome, Recipient };
export type EventTarget = { user: string; device?: string } | { room: string } | { broadcast: true };

export interface RouterDeps {
  nodeId: string;
  bus: Bus;
  presence: PresenceStore;
  /** Keeps what reached no connected device for sessions away in their resume window. */
  keeper: AwayKeeper;
  logger: Logger;
  metrics: Metrics;
}

export class Router {
  private readonly nodeId: string;
  private readonly presence: PresenceStore;
  private readonly logger: Logger;
  private readonly metrics: Metrics;
  private readonly keeper: AwayKeeper;
  /** The bus side: publishing envelopes and delivering other nodes' (bus-link.ts). */
  private readonly link: BusLink;
  private readonly local = new LocalIndex();
  readonly rooms: Rooms;
  readonly watches: Watches;
  /** Detaches still writing to the store; shutdown waits for them (no ghost users). */
  private readonly detaching = new Set<Promise<void>>();

  constructor(deps: RouterDeps) {
    this.nodeId = deps.nodeId;
    this.presence = deps.presence;
    this.logger = deps.logger;
    this.metrics = deps.metrics;
    this.keeper = deps.keeper;
    const { nodeId, presence, logger, metrics, keeper } = deps;
    const local = this.local;
    this.link = new BusLink({ nodeId, bus: deps.bus, local, logger, metrics, onPresence: (user, status, frame) => this.watches.deliver(user, status, frame) });
    this.rooms = new Rooms({ nodeId, keeper, local, link: this.link, presence, metrics });
    this.watches = new Watches({ nodeId, local, link: this.link, presence, logger });
    presence.onChanges((changes) => this.announceStoreChanges(changes));
  }

  /** Every node listens to broadcasts. */
  async start(): Promise<void> {
    await this.link.subscriptions.take(channels.broadcast()).ready;
  }

  // ── sessions ────────────────────────────────────────────────────────────

  /**
   * Registers a new local session: cluster-wide uniqueness of (user, device), presence, its
   * channels. Done at once with the in-process bus and presence: the welcome then leaves with the
   * upgrade's response, in the same write (bench W5). Rejects when the store could not be written
   * (a Redis outage): the session stays, and the store registers it when Redis returns.
   */
  attach(r: Recipient): MaybePromise<void> {
    const state = this.local.add(r);
    state.since = this.link.messageCount;
    state.userChannel = this.link.subscriptions.take(channels.user(r.user));
    state.deviceChannel = this.link.subscriptions.take(channels.device(r.user, r.device));
    const subscribed = allMaybe([state.userChannel.ready, state.deviceChannel.ready]);
    let attached: MaybePromise<void>;
    try {
      if (!(subscribed instanceof Promise)) attached = this.register(r, state);
      // During an outage the subscribes wait in the subscriber's queue and apply when the bus
      // returns; the connection is welcomed now rather than held (the store registers it later).
      else if (!this.link.isUp()) attached = this.register(r, state);
      else attached = subscribed.then(() => (state.isLive ? this.register(r, state) : undefined));
    } catch (error) {
      attached = Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    if (!(attached instanceof Promise)) {
      state.phase = 'attached';
      return;
    }
    const done = (): void => {
      if (state.phase === 'attaching') state.phase = 'attached';
    };
    state.attaching = attached.then(done, done);
    return attached;
  }

  private register(r: Recipient, state: SessionState): MaybePromise<void> {
    return chainMaybe(this.presence.addDevice(connection(r, this.nodeId)), (added) => {
      // The older connection of the same device loses (SPEC §3.1) — the one the store names, and
      // only now that the store names this one as holder, so its goodbye reports nobody offline.
      if (added.replaced !== undefined) this.kick({ user: r.user, device: r.device, ...added.replaced });
      // Closed while registering: its detach (which waited for this) removes it at once; watchers
      // need not hear "online" first.
      if (added.wentOnline && state.isLive) return this.watches.announce(r.user, 'online');
    });
  }

  /** Closes a replaced connection with 4009: here when it is local, else on whichever node holds it. */
  private kick(target: DeviceConnection): void {
    const local = this.local.session(target.user, target.session);
    if (local !== undefined) return local.kick(CLOSE.replaced);
    if (target.node === this.nodeId) return; // already gone from this node
    void this.link.publish(channels.device(target.user, target.device), { k: 'kick', o: this.nodeId, s: target.session }, '');
  }

  /** Makes shutdown (`settled`) wait for `work` too: a session going away still writing its replay buffer. */
  hold(work: Promise<void>): void {
    const held: Promise<void> = work.finally(() => this.detaching.delete(held));
    this.detaching.add(held);
  }

  /**
   * A closed session going away (client-session.ts): it stays in the local index, so what still
   * reaches this node for it is kept for its resume, but it is no longer live — a registration or
   * a join still in flight writes nothing for it, and nobody hears it online.
   */
  leaving(r: Recipient): void {
    const state = this.local.state(r);
    if (state?.isLive === true) state.phase = 'leaving';
  }

  /** The rooms and watched users of a local session. */
  stateOf(r: Recipient): { rooms: string[]; watches: string[] } {
    return this.local.stateOf(r);
  }

  /**
   * Unsubscribes the channels of a session going away while it stays in the local index, and
   * resolves when the bus confirmed: every message published to them before then has reached the
   * session (which keeps it for its resume), every later one reaches the senders' keepers.
   */
  quiesce(r: Recipient): Promise<void> {
    const state = this.local.state(r);
    if (state === undefined) return Promise.resolve();
    const subs = [state.userChannel, state.deviceChannel, ...[...(state.rooms?.values() ?? [])].map((entry) => entry.sub)];
    const unsubscribed: Promise<void>[] = [];
    for (const sub of subs) {
      const released = sub?.release();
      if (released !== undefined) unsubscribed.push(released);
    }
    return Promise.all(unsubscribed).then(() => undefined);
  }

  /** Resolves when every detach in flight has finished, or after `timeoutMs` (shutdown waits for it: no ghost users). */
  async settled(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.detaching.size > 0 && performance.now() < deadline) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - performance.now()))));
      await Promise.race([Promise.all(this.detaching), timeout]);
      clearTimeout(timer);
    }
  }

  /** Removes a closed session everywhere: rooms (member_left), watches, presence. Never rejects; done at once on one node. */
  detach(r: Recipient): MaybePromise<void> {
    const state = this.local.remove(r);
    if (state === undefined) return;
    state.phase = 'detaching';
    void state.userChannel?.release();
    void state.deviceChannel?.release();
    this.watches.dropAll(r, state);
    // Rooms and presence are repaired by the store itself (it finishes failed removals); log and go on.
    const warn = (error: unknown) => this.logger.warn({ err: error }, 'detach could not update cluster state');
    let done: MaybePromise<void>;
    try {
      const left = this.rooms.leaveAll(r, state);
      // What attach still has in flight lands before the removal (it registers nothing once it sees the session gone).
      const before = allMaybe([state.attaching, left instanceof Promise ? left.catch(warn) : undefined]);
      done = chainMaybe(before, () => this.unregister(r));
    } catch (error) {
      done = Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    if (!(done instanceof Promise)) {
      state.phase = 'gone';
      return;
    }
    const detaching: Promise<void> = done.catch(warn).finally(() => {
      state.phase = 'gone';
      this.detaching.delete(detaching);
    });
    this.detaching.add(detaching);
    return detaching;
  }

  private unregister(r: Recipient): MaybePromise<void> {
    return chainMaybe(this.presence.removeDevice(connection(r, this.nodeId)), (removed) =>
      removed.wentOffline ? this.watches.announce(r.user, 'offline') : undefined,
    );
  }

  // ── direct signaling (SPEC §3.2) ────────────────────────────────────────

  /**
   * Tells the sender the outcome (`from.relayed`): at once when no other node can hold the
   * recipient (one node on the in-process bus), else when the bus answers (`DirectSignal`).
   */
  sendDirect(from: Recipient, type: SignalType, to: string, device: string | undefined, payloadJson: string | undefined, id: string | undefined): void {
    const started = performance.now();
    const frame = encode.signal(type, from.senderJson, payloadJson);
    const messageId = this.link.nextMessageId();
    let delivered = 0;
    for (const target of this.local.devicesOf(to)) {
      if (target === from || (device !== undefined && target.device !== device)) continue;
      target.deliver(frame, type, messageId);
      delivered++;
    }
    if (delivered > 0) this.metrics.deliveredLocal.observe((performance.now() - started) / 1000);
    new DirectSignal(this.metrics, this.keeper, from, id, type, to, device, messageId, frame, started, delivered > 0).publish(this.link);
  }

  // ── what the store changed by itself ────────────────────────────────────

  /** Announces a store change like this node's own: a dead node reaped, deferred writes done, state restored. */
  private async announceStoreChanges(changes: StoreChanges): Promise<void> {
    try {
      for (const replaced of changes.replaced) this.kick(replaced);
      for (const user of changes.online) await this.watches.announce(user, 'online');
      for (const user of changes.offline) await this.watches.announce(user, 'offline');
      for (const { room, user, device, session } of changes.joined)
        await this.rooms.announce(room, { user, device }, 'member_joined', session === undefined ? undefined : this.local.session(user, session));
      for (const { room, user, device } of changes.left) await this.rooms.announce(room, { user, device }, 'member_left');
      if (changes.recovered) await this.watches.refresh();
    } catch (error) {
      this.logger.warn({ err: error }, 'could not announce what the presence store changed');
    }
  }

  // ── server events (SPEC §4) ─────────────────────────────────────────────

  /**
   * Delivers an `event` frame cluster-wide, and keeps it for the sessions away in their resume
   * window that it names: a user's or device's when no connected device got it (like a direct
   * signal), a room's always. Broadcasts are not kept. Throws BusUnavailableError when the bus failed.
   */
  async publishEvent(target: EventTarget, event: string, payload: unknown): Promise<void> {
    const frame = encode.event(event, payload);
    const id = this.link.nextMessageId();
    let local: Recipient[];
    let channel: string;
    if ('broadcast' in target) {
      local = [...this.local.all()];
      channel = channels.broadcast();
    } else if ('room' in target) {
      local = [...this.local.membersOf(target.room)];
      channel = channels.room(target.room);
    } else {
      local = this.local.recipientsOf(target.user, target.device);
      channel = directChannel(target.user, target.device);
    }
    for (const r of local) r.deliver(frame, 'event', id);
    const header: Envelope = { k: 'event', o: this.nodeId, m: id };
    const remote = await this.link.publish(channel, header, frame);
    if (remote === undefined) throw new BusUnavailableError(new Error('publish failed'));
    if ('room' in target) this.keeper.forRoom(target.room, id, frame);
    // Kept by nobody because the session came back after the publish (as for a direct signal): once more.
    else if ('user' in target && local.length === 0 && remote === 0 && (await this.keeper.forUser(target.user, target.device, id, frame)) === 'live')
      await this.link.publish(channel, header, frame);
  }
}

/** Where a message for `user` goes: all of the user's devices, or the one named. */
function directChannel(user: string, device: string | undefined): string {
  return device === undefined ? channels.user(user) : channels.device(user, device);
}

function connection(r: Recipient, node: string): DeviceConnection {
  return { user: r.user, device: r.device, session: r.id, node };
}

/**
 * A direct signal waiting for the bus, and what its sender is told then. One object per message
 * in flight: it lives until Redis replies, a turn or more under load, so it survives young-
 * generation GCs. A promise chain, then closures and their contexts (one per layer) were most of
 * what those collections copied on a busy sending node (bench W2, 1000 pairs: ~250 B per message
 * in flight, now one object of ~88 B; heap snapshots).
 */
class DirectSignal extends Publication {
  /** Published a second time: see `reached`. */
  private again = false;

  constructor(
    private readonly metrics: Metrics,
    private readonly keeper: AwayKeeper,
    private readonly from: Recipient,
    private readonly id: string | undefined,
    private readonly type: SignalType,
    private readonly to: string,
    /** The device the sender named, if any; with the frame and its id, what a keeper needs when nobody got it. */
    private readonly device: string | undefined,
    private readonly messageId: string,
    private readonly frame: string,
    private readonly started: number,
    private readonly deliveredLocally: boolean,
  ) {
    super();
  }

  reached(remote: number | undefined): void {
    if (remote === undefined) return this.from.relayed(this.deliveredLocally ? 'delivered' : 'unavailable', this.id, this.to);
    if (remote > 0) this.metrics.deliveredRemote.observe((performance.now() - this.started) / 1000);
    if (this.deliveredLocally || remote > 0) return this.from.relayed('delivered', this.id, this.to);
    // No connected device: a session away in its resume window keeps it (SPEC §3.9).
    whenReady(
      this.keeper.forUser(this.to, this.device, this.messageId, this.frame),
      (kept) => (kept === 'live' ? this.publishAgain() : this.from.relayed(kept === 'queued' ? 'queued' : 'peer_offline', this.id, this.to)),
      () => this.from.relayed('peer_offline', this.id, this.to),
    );
  }

  /**
   * Nobody kept the message because the session it was for is connected again: it came back (a
   * resume) after the publish, and its new connection did not hear it. Published once more, to it.
   */
  private publishAgain(): void {
    if (this.again || this.link === undefined) return this.from.relayed('peer_offline', this.id, this.to);
    this.again = true;
    this.publish(this.link);
  }

  /** Publishes the message to its recipient's channel (the user's, or the named device's). */
  publish(link: BusLink): void {
    link.publishThen(directChannel(this.to, this.device), { k: 'dm', o: link.nodeId, s: this.from.id, t: this.type, m: this.messageId }, this.frame, this);
  }
}
