// Rooms (SPEC §3.3): membership on this node and in the presence store, and
// room traffic to every member on every node.
//
//   subscribe ──► local membership (at once) ──► channel "r:<room>" ──► store join ──► member_joined
//   publish   ──► local members (at once) ──► bus "r:<room>" ──► other nodes' members
//
// A membership is local at once, so a publish right after a subscribe sees
// it; the store writes for one (session, room) — join, leave — are chained
// and reach Redis in the order they were asked for, so a quick
// subscribe/unsubscribe/subscribe never ends with the store disagreeing with
// the session. A join that resumes after its subscribe writes nothing for a
// session that closed meanwhile; a failed join gives back exactly the channel
// reference it took.
import { channels } from '../bus/bus';
import { SERVER_SENDER } from '../protocol/envelope';
import type { AwayKeeper } from '../resume/away-keeper';
import type { Metrics } from '../metrics/metrics';
import type { PresenceStore } from '../presence/presence';
import { encode, type Member } from '../protocol/server-frames';
import { mapMaybe, type MaybePromise } from '../util/maybe-promise';
import type { BusLink } from './bus-link';
import { withinClusterWait } from './deadline';
import { BusUnavailableError } from './errors';
import type { LocalIndex, Recipient, RoomEntry, SessionState } from './local-index';

export interface RoomsDeps {
  nodeId: string;
  /** Keeps room traffic for members away in their resume window. */
  keeper: AwayKeeper;
  local: LocalIndex;
  link: BusLink;
  presence: PresenceStore;
  metrics: Metrics;
}

const settledQuietly = (): void => undefined;

export class Rooms {
  constructor(private readonly deps: RoomsDeps) {}

  isMember(r: Recipient, room: string): boolean {
    return this.deps.local.state(r)?.rooms?.has(room) ?? false;
  }

  count(r: Recipient): number {
    return this.deps.local.state(r)?.rooms?.size ?? 0;
  }

  /** Joins; resolves with every member (the new one included). Throws BusUnavailableError (nothing kept). */
  async join(r: Recipient, room: string): Promise<Member[]> {
    const { local, link, presence } = this.deps;
    const state = local.state(r);
    if (state === undefined || !state.isLive) return [];
    if (state.rooms?.has(room) === true) {
      // Subscribing again is answered with the current members and announced to nobody.
      try {
        await state.roomWrites?.get(room);
        return await presence.members(room);
      } catch (error) {
        throw new BusUnavailableError(error);
      }
    }
    // While the bus is down a subscribe would wait in the client's queue; answer `unavailable` now.
    if (!link.isUp()) throw new BusUnavailableError(new Error('bus down'));
    const entry: RoomEntry = { sub: link.subscriptions.take(channels.room(room)) };
    local.join(r, state, room, entry);
    try {
      const members = await this.write(state, room, async () => {
        await withinClusterWait(entry.sub.ready, 'subscribe');
        // Closed while subscribing: its detach leaves the room after this; nothing may be written.
        if (!state.isLive) return [];
        const joined = await presence.joinRoom(room, { user: r.user, device: r.device, session: r.id, node: this.deps.nodeId });
        await this.send(r, room, encode.memberJoined(room, { user: r.user, device: r.device }), 'member_joined');
        return joined;
      });
      return members;
    } catch (error) {
      local.leave(r, state, room, entry);
      void entry.sub.release();
      throw new BusUnavailableError(error);
    }
  }

  /** Leaves at once locally; throws BusUnavailableError when the cluster could not be told (the store finishes it later). */
  async leave(r: Recipient, room: string): Promise<void> {
    const state = this.deps.local.state(r);
    const entry = state?.rooms?.get(room);
    if (state === undefined || entry === undefined) return;
    try {
      await this.leaveNow(r, state, room, entry);
    } catch (error) {
      throw new BusUnavailableError(error);
    }
  }

  /** A detached session's rooms: left locally at once, in the store after any join still in flight. Done at once when it had none. */
  leaveAll(r: Recipient, state: SessionState): MaybePromise<void> {
    if (state.rooms === undefined || state.rooms.size === 0) return;
    return Promise.all([...state.rooms].map(([room, entry]) => this.leaveNow(r, state, room, entry))).then(settledQuietly);
  }

  private leaveNow(r: Recipient, state: SessionState, room: string, entry: RoomEntry): Promise<void> {
    this.deps.local.leave(r, state, room, entry);
    void entry.sub.release();
    return this.write(state, room, async () => {
      const member = { user: r.user, device: r.device, session: r.id };
      if (await this.deps.presence.leaveRoom(room, member)) await this.send(r, room, encode.memberLeft(room, member), 'member_left');
    });
  }

  /** Runs a store write for (session, room) after the previous one settled, whatever its outcome. */
  private write<T>(state: SessionState, room: string, op: () => Promise<T>): Promise<T> {
    const writes = (state.roomWrites ??= new Map<string, Promise<unknown>>());
    const previous = writes.get(room);
    const next = previous === undefined ? op() : previous.then(op);
    const settled = next.then(settledQuietly, settledQuietly);
    writes.set(room, settled);
    void settled.then(() => {
      if (writes.get(room) === settled) writes.delete(room);
    });
    return next;
  }

  /** Sends a room message to every other member on every node; false when the bus failed. */
  publish(from: Recipient, room: string, payloadJson: string): MaybePromise<boolean> {
    return this.send(from, room, encode.roomMessage(room, from.senderJson, payloadJson), 'message');
  }

  /** A membership change the store made by itself (a reaped member left, a restored one joined again), said by the server. */
  announce(room: string, member: Member, change: 'member_joined' | 'member_left', self?: Recipient): MaybePromise<boolean> {
    const frame = change === 'member_joined' ? encode.memberJoined(room, member) : encode.memberLeft(room, member);
    return this.send(self, room, frame, change);
  }

  /**
   * Room traffic to every member on every node but `from` (undefined: the server speaks, nobody is
   * excluded), and to the members away in their resume window. Those are looked up after the
   * publish has run: a member whose node unsubscribed before it had been listed as away before
   * (client-session.ts, going away), so each message reaches it live, by its node, or here.
   */
  private send(from: Recipient | undefined, room: string, frame: string, type: string): MaybePromise<boolean> {
    const { local, link, metrics, nodeId, keeper } = this.deps;
    const started = performance.now();
    const id = link.nextMessageId();
    for (const member of local.membersOf(room)) if (member !== from) member.deliver(frame, type, id);
    metrics.deliveredLocal.observe((performance.now() - started) / 1000);
    const remote = link.publish(channels.room(room), { k: 'room', o: nodeId, s: from?.id ?? SERVER_SENDER, t: type, m: id }, frame);
    return mapMaybe(remote, (count) => {
      if (count === undefined) return false;
      keeper.forRoom(room, id, frame);
      return true;
    });
  }
}
