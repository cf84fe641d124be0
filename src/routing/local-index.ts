// The node's own sessions, indexed the ways the router looks them up: by
// user, by room and by watched user. Synchronous and local: the bus and the
// presence store are the router's business.
import type { CLOSE } from '../errors/codes';

/** What became of a direct signal: handed to a recipient's node, no device of the recipient online, or the bus failed. */
export type DirectOutcome = 'delivered' | 'peer_offline' | 'unavailable';

/** A local session as the router sees it. */
export interface Recipient {
  readonly id: string;
  readonly user: string;
  readonly device: string;
  /** Its `from`/`from_device` members as encoded in the frames it sends (server-frames.ts `sender`). */
  readonly senderJson: string;
  /** Sends an encoded frame (slow consumers are closed by the transport). */
  deliver(frame: string, type: string): void;
  /**
   * Told what became of a direct signal it sent (`id` and `to` as in the frame). A method rather
   * than a callback per message: the router's one object per message (`DirectSignal`) is then all
   * that waits for Redis (bench W2).
   */
  relayed(outcome: DirectOutcome, id: string | undefined, to: string): void;
  /** Closed by the server: takeover (4009). */
  kick(close: typeof CLOSE.replaced): void;
}

/** What one session joined and watches; each set is made on first use (most connections never join or watch). */
export interface LocalState {
  rooms?: Set<string>;
  watching?: Set<string>;
}

const NONE: readonly Recipient[] = [];

export class LocalIndex {
  private readonly sessions = new Map<Recipient, LocalState>();
  /**
   * A user's sessions as a copy-on-write array: a user has one or a few devices, an array of one
   * costs a fraction of a Set, and a copy on change keeps iterations safe when a delivery closes a
   * session (uWS runs the close handler inside `end()`).
   */
  private readonly byUser = new Map<string, readonly Recipient[]>();
  private readonly byRoom = new Map<string, Set<Recipient>>();
  private readonly watchers = new Map<string, Set<Recipient>>();

  all(): Iterable<Recipient> {
    return this.sessions.keys();
  }

  state(r: Recipient): LocalState | undefined {
    return this.sessions.get(r);
  }

  add(r: Recipient): LocalState {
    const state: LocalState = {};
    this.sessions.set(r, state);
    const devices = this.byUser.get(r.user);
    this.byUser.set(r.user, devices === undefined ? [r] : [...devices, r]);
    return state;
  }

  /** Forgets the session as a user's device; its rooms and watches are left for the caller to undo. */
  remove(r: Recipient): LocalState | undefined {
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

  membersOf(room: string): Iterable<Recipient> {
    return this.byRoom.get(room) ?? NONE;
  }

  isWatched(user: string): boolean {
    return this.watchers.has(user);
  }

  watchersOf(user: string): Iterable<Recipient> {
    return this.watchers.get(user) ?? NONE;
  }

  join(r: Recipient, state: LocalState, room: string): void {
    (state.rooms ??= new Set()).add(room);
    addTo(this.byRoom, room, r);
  }

  /** Returns whether the session was a member. */
  leave(r: Recipient, state: LocalState, room: string): boolean {
    if (state.rooms?.delete(room) !== true) return false;
    removeFrom(this.byRoom, room, r);
    return true;
  }

  watch(r: Recipient, state: LocalState, user: string): void {
    (state.watching ??= new Set()).add(user);
    addTo(this.watchers, user, r);
  }

  /** Returns whether the session was watching `user`. */
  unwatch(r: Recipient, state: LocalState, user: string): boolean {
    if (state.watching?.delete(user) !== true) return false;
    removeFrom(this.watchers, user, r);
    return true;
  }
}

function addTo<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  let set = map.get(key);
  if (set === undefined) map.set(key, (set = new Set()));
  set.add(value);
}

function removeFrom<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  const set = map.get(key);
  if (set === undefined) return;
  set.delete(value);
  if (set.size === 0) map.delete(key);
}
