// The node's own sessions, indexed the ways the router looks them up: by
// user, by room and by watched user, and each session's cluster state.
// Synchronous and local: the bus and the presence store are the router's
// business.
//
// A session's cluster state is a small state machine:
//
//   attaching ──► attached ──► (leaving) ──► detaching ──► gone
//        └──────────────┴─────────┴───────────►┘
//
// attaching: subscribing its channels and registering it in the presence
// store; attached: registered (or, during a Redis outage, left to the store
// to register when Redis returns); detaching: the socket closed, its cluster
// state is being removed; gone: removed. leaving: closed, but still in the
// index while its session goes away for resume (what reaches it is kept).
// Only attaching and attached are live:
// every asynchronous step re-checks `isLive` when it resumes and writes
// nothing for a session that is no longer live.
import type { CLOSE } from '../errors/codes';
import type { PresenceStatus } from '../protocol/server-frames';
import type { Subscription } from './subscriptions';

/**
 * What became of a direct signal: handed to a recipient's node, kept for a session of the
 * recipient away in its resume window, no device of the recipient online, or the bus failed.
 */
export type DirectOutcome = 'delivered' | 'queued' | 'peer_offline' | 'unavailable';

/** A local session as the router sees it. */
export interface Recipient {
  readonly id: string;
  readonly user: string;
  readonly device: string;
  /** Its `from`/`from_device` members as encoded in the frames it sends (server-frames.ts `sender`). */
  readonly senderJson: string;
  /**
   * Sends an encoded frame (slow consumers are closed by the transport). `id`: the message's id
   * (envelope.ts) for direct, room and event traffic; undefined for what is never replayed
   * (presence changes).
   */
  deliver(frame: string, type: string, id?: string): void;
  /**
   * Told what became of a direct signal it sent (`id` and `to` as in the frame). A method rather
   * than a callback per message: the router's one object per message (`DirectSignal`) is then all
   * that waits for Redis (bench W2).
   */
  relayed(outcome: DirectOutcome, id: string | undefined, to: string): void;
  /** Closed by the server: takeover (4009). */
  kick(close: typeof CLOSE.replaced): void;
}

export type Phase = 'attaching' | 'attached' | 'leaving' | 'detaching' | 'gone';

/** One joined room: the handle on its channel. */
export interface RoomEntry {
  readonly sub: Subscription;
}

/** One watched user: the handle on its presence channel and the status this session was last told. */
export interface WatchEntry {
  readonly sub: Subscription;
  /** Undefined until the `watching` reply went out (or a change arrived before it). */
  told: PresenceStatus | undefined;
}

/** One session's cluster state; the maps are made on first use (most connections never join or watch). */
export class SessionState {
  phase: Phase = 'attaching';
  /** This node's message count when the session attached: its own messages numbered up to it (sent before it was here) reach it through the bus (bus-link.ts). */
  since = Number.MAX_SAFE_INTEGER;
  /** The handles on the user and device channels, taken at attach and given back at detach. */
  userChannel: Subscription | undefined;
  deviceChannel: Subscription | undefined;
  /** Settles when attaching is over (registered, deferred or abandoned); detach waits for it. */
  attaching: Promise<void> | undefined;
  rooms?: Map<string, RoomEntry>;
  watching?: Map<string, WatchEntry>;
  /**
   * The last store write per room (a join or a leave), chained: writes for one (session, room)
   * reach Redis in the order they were asked for, whatever their subscribes waited for.
   */
  roomWrites?: Map<string, Promise<unknown>>;

  get isLive(): boolean {
    return this.phase === 'attaching' || this.phase === 'attached';
  }
}

const NONE: readonly Recipient[] = [];
const NO_WATCHERS: ReadonlyMap<Recipient, WatchEntry> = new Map();

export class LocalIndex {
  private readonly sessions = new Map<Recipient, SessionState>();
  /**
   * A user's sessions as a copy-on-write array: a user has one or a few devices, an array of one
   * costs a fraction of a Set, and a copy on change keeps iterations safe when a delivery closes a
   * session (uWS runs the close handler inside `end()`).
   */
  private readonly byUser = new Map<string, readonly Recipient[]>();
  private readonly byRoom = new Map<string, Set<Recipient>>();
  private readonly watchers = new Map<string, Map<Recipient, WatchEntry>>();

  all(): Iterable<Recipient> {
    return this.sessions.keys();
  }

  state(r: Recipient): SessionState | undefined {
    return this.sessions.get(r);
  }

  add(r: Recipient): SessionState {
    const state = new SessionState();
    this.sessions.set(r, state);
    const devices = this.byUser.get(r.user);
    this.byUser.set(r.user, devices === undefined ? [r] : [...devices, r]);
    return state;
  }

  /** Forgets the session as a user's device; its rooms and watches are left for the caller to undo. */
  remove(r: Recipient): SessionState | undefined {
    const state = this.sessions.get(r);
    if (state === undefined) return undefined;
    this.sessions.delete(r);
    const rest = (this.byUser.get(r.user) ?? NONE).filter((other) => other !== r);
    if (rest.length === 0) this.byUser.delete(r.user);
    else this.byUser.set(r.user, rest);
    return state;
  }

  devicesOf(user: string): readonly Recipient[] {
    return this.byUser.get(user) ?? NONE;
  }

  /** The user's local sessions, or only those of `device`. */
  recipientsOf(user: string, device?: string): Recipient[] {
    const all = this.devicesOf(user);
    return device === undefined ? [...all] : all.filter((s) => s.device === device);
  }

  /** The local session with this id, if it is a device of `user`. */
  session(user: string, id: string): Recipient | undefined {
    return this.devicesOf(user).find((s) => s.id === id);
  }

  /** The rooms and watched users of a session, as a resume restores them. */
  stateOf(r: Recipient): { rooms: string[]; watches: string[] } {
    const state = this.sessions.get(r);
    return { rooms: [...(state?.rooms?.keys() ?? [])], watches: [...(state?.watching?.keys() ?? [])] };
  }

  membersOf(room: string): Iterable<Recipient> {
    return this.byRoom.get(room) ?? NONE;
  }

  /** Users watched by at least one local session. */
  watchedUsers(): Iterable<string> {
    return this.watchers.keys();
  }

  isWatched(user: string): boolean {
    return this.watchers.has(user);
  }

  watchersOf(user: string): ReadonlyMap<Recipient, WatchEntry> {
    return this.watchers.get(user) ?? NO_WATCHERS;
  }

  join(r: Recipient, state: SessionState, room: string, entry: RoomEntry): void {
    (state.rooms ??= new Map<string, RoomEntry>()).set(room, entry);
    let members = this.byRoom.get(room);
    if (members === undefined) this.byRoom.set(room, (members = new Set()));
    members.add(r);
  }

  /** Removes the membership when `entry` is still the session's entry for the room (a rollback must not undo a later join). */
  leave(r: Recipient, state: SessionState, room: string, entry: RoomEntry): boolean {
    if (state.rooms?.get(room) !== entry) return false;
    state.rooms.delete(room);
    removeFrom(this.byRoom, room, r);
    return true;
  }

  watch(r: Recipient, state: SessionState, user: string, entry: WatchEntry): void {
    (state.watching ??= new Map<string, WatchEntry>()).set(user, entry);
    let watchers = this.watchers.get(user);
    if (watchers === undefined) this.watchers.set(user, (watchers = new Map<Recipient, WatchEntry>()));
    watchers.set(r, entry);
  }

  /** Removes the watch when `entry` is still the session's entry for `user`. */
  unwatch(r: Recipient, state: SessionState, user: string, entry: WatchEntry): boolean {
    if (state.watching?.get(user) !== entry) return false;
    state.watching.delete(user);
    removeFrom(this.watchers, user, r);
    return true;
  }
}

/** Takes `r` out of the index's collection under `key`, and the collection with its last member. */
function removeFrom(index: Map<string, { delete(r: Recipient): boolean; readonly size: number }>, key: string, r: Recipient): void {
  const collection = index.get(key);
  if (collection === undefined) return;
  collection.delete(r);
  if (collection.size === 0) index.delete(key);
}
