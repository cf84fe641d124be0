// Presence for watchers (SPEC §3.4): who watches whom on this node, and
// telling each watcher when a watched user goes online or offline anywhere.
//
//   a node's attach/detach, or a store change ──► announce(user, status)
//        ├──► deliver() to this node's watchers
//        └──► bus "p:<user>" ──► other nodes' BusLink ──► their deliver()
//
// Each watcher is told only what differs from what it was last told (its
// `watching` reply, then every change). So a watcher never sees the same
// status twice — a user who reconnects elsewhere during a drain, announced
// "online" by the new node, is not announced online again — and after an
// outage, in which announcements on the bus may have been lost, `refresh`
// re-reads every watched user and tells each watcher only what changed.
import { channels } from '../bus/bus';
import type { Logger } from '../log/logger';
import { statusRecord, type PresenceStore } from '../presence/presence';
import { encode, type PresenceStatus } from '../protocol/server-frames';
import { allMaybe, mapMaybe, type MaybePromise } from '../util/maybe-promise';
import type { BusLink } from './bus-link';
import { withinClusterWait } from './deadline';
import { BusUnavailableError } from './errors';
import type { LocalIndex, Recipient, SessionState, WatchEntry } from './local-index';

export interface WatchesDeps {
  nodeId: string;
  local: LocalIndex;
  link: BusLink;
  presence: PresenceStore;
  logger: Logger;
}

/** Users per presence read (the SPEC's limit for one request). */
const READ_BATCH = 100;

export class Watches {
  /** Offline announcements held back during a drain (see beginDrain). */
  private heldOffline: Set<string> | undefined;

  constructor(private readonly deps: WatchesDeps) {}

  isWatching(r: Recipient, user: string): boolean {
    return this.deps.local.state(r)?.watching?.has(user) ?? false;
  }

  count(r: Recipient): number {
    return this.deps.local.state(r)?.watching?.size ?? 0;
  }

  /** Starts watching; resolves with the current state of each user. Throws BusUnavailableError (nothing kept). */
  async watch(r: Recipient, users: readonly string[]): Promise<Record<string, PresenceStatus>> {
    const { local, link } = this.deps;
    const state = local.state(r);
    if (state === undefined || !state.isLive) return statusRecord();
    // While the bus is down a subscribe would wait in the client's queue; answer `unavailable` now.
    if (!link.isUp()) throw new BusUnavailableError(new Error('bus down'));
    const fresh = new Map<string, WatchEntry>();
    for (const user of users) {
      if (state.watching?.has(user) === true) continue;
      const entry: WatchEntry = { sub: link.subscriptions.take(channels.presence(user)), told: undefined };
      local.watch(r, state, user, entry);
      fresh.set(user, entry);
    }
    try {
      await withinClusterWait(allMaybe([...fresh.values()].map((entry) => entry.sub.ready)), 'watch');
      const read = await this.deps.presence.status(users);
      const reply = statusRecord();
      for (const user of users) {
        const entry = state.watching?.get(user);
        // A change that arrived while this watch was being set up is newer than (or as new as) the read.
        const status = (fresh.has(user) ? entry?.told : undefined) ?? read[user] ?? 'offline';
        if (entry !== undefined) entry.told = status;
        reply[user] = status;
      }
      return reply;
    } catch (error) {
      for (const [user, entry] of fresh) this.drop(r, state, user, entry);
      throw new BusUnavailableError(error);
    }
  }

  unwatch(r: Recipient, users: readonly string[]): void {
    const state = this.deps.local.state(r);
    if (state === undefined) return;
    for (const user of users) {
      const entry = state.watching?.get(user);
      if (entry !== undefined) this.drop(r, state, user, entry);
    }
  }

  /** A detached session's watches, all at once. */
  dropAll(r: Recipient, state: SessionState): void {
    for (const [user, entry] of [...(state.watching ?? [])]) this.drop(r, state, user, entry);
  }

  private drop(r: Recipient, state: SessionState, user: string, entry: WatchEntry): void {
    this.deps.local.unwatch(r, state, user, entry);
    void entry.sub.release();
  }

  async status(users: readonly string[]): Promise<Record<string, PresenceStatus>> {
    try {
      return await this.deps.presence.status(users);
    } catch (error) {
      throw new BusUnavailableError(error);
    }
  }

  /** Tells this node's watchers of `user` its new status, each only if it differs from what it was told. */
  deliver(user: string, status: PresenceStatus, frame: string): void {
    for (const [watcher, entry] of this.deps.local.watchersOf(user)) {
      if (entry.told === status) continue;
      entry.told = status;
      watcher.deliver(frame, 'presence');
    }
  }

  /** A change this node made or saw (its own sessions, or a store change): to local watchers and to every other node's. */
  announce(user: string, status: PresenceStatus): MaybePromise<void> {
    if (status === 'offline' && this.heldOffline !== undefined) {
      this.heldOffline.add(user);
      return;
    }
    const { local, link, nodeId } = this.deps;
    const channel = channels.presence(user);
    // Nobody watches on this node and no other node can: not even the frame is built (every connect and disconnect asks).
    if (!local.isWatched(user) && !link.othersMayListen(channel)) return;
    const frame = encode.presenceChange(user, status);
    this.deliver(user, status, frame);
    return mapMaybe(link.publish(channel, { k: 'pres', o: nodeId, st: status }, frame), () => undefined);
  }

  /** After an outage: re-reads every watched user and tells each watcher what changed meanwhile. */
  async refresh(): Promise<void> {
    const users = [...this.deps.local.watchedUsers()];
    for (let i = 0; i < users.length; i += READ_BATCH) {
      const batch = users.slice(i, i + READ_BATCH);
      const states = await this.deps.presence.status(batch);
      for (const user of batch) {
        const status = states[user];
        if (status !== undefined) this.deliver(user, status, encode.presenceChange(user, status));
      }
    }
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
      for (let i = 0; i < users.length; i += READ_BATCH) {
        const states = await this.deps.presence.status(users.slice(i, i + READ_BATCH));
        for (const user of Object.keys(states)) if (states[user] === 'offline') await this.announce(user, 'offline');
      }
    } catch (error) {
      this.deps.logger.warn({ err: error, users: held.size }, 'could not announce offline users at the end of the drain');
    }
  }
}
