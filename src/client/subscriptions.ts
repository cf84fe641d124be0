// What a client has joined and watched, kept across connections.
//
// On a new session the server holds nothing: rooms are joined and users
// watched again (until leave / unwatch), and a watched user's status that
// changed meanwhile is reported. On a resumed session (SPEC §3.9) the server
// restored the session's rooms and watches itself: nothing is sent again but
// what the server may hold otherwise than the client wants (`unsettled`),
// and the watched users' status is asked once (a query, not a watch) so that
// a change while away is reported even if the replay did not carry it.
import type { ClientEvents } from './events';
import type { SwitchboardError } from './errors';
import type { Member, PresenceStatus, ServerFrame } from './frames';

type Request = (frame: { type: string } & Record<string, unknown>) => Promise<ServerFrame>;
type Emit = <K extends keyof ClientEvents>(name: K, value: ClientEvents[K]) => void;

/** A watch or presence list holds at most this many users (SPEC §3.4). */
const USERS_PER_FRAME = 100;
/** Answers to a rejoin that mean the room is not for this connection any more. */
const REFUSALS: ReadonlySet<string> = new Set(['forbidden', 'limit_exceeded', 'bad_message']);
/** Failures after which the server may or may not have applied the request (the socket closed, or no answer in time). */
const UNKNOWN_OUTCOME: ReadonlySet<string> = new Set(['closed', 'timeout']);

export class Subscriptions {
  private readonly rooms = new Set<string>();
  /** Watched users and their last known status. */
  private readonly watched = new Map<string, PresenceStatus | undefined>();
  /**
   * Rooms and users whose state in the current session the server has not
   * confirmed: a join, leave, watch or unwatch (or a rejoin) that is in
   * flight, or whose answer never came. A resumed session may hold them
   * otherwise than `rooms` / `watched` say, so they are asked for again then.
   */
  private readonly unsettled = { rooms: new Set<string>(), users: new Set<string>() };

  constructor(
    private readonly request: Request,
    private readonly emit: Emit,
  ) {}

  async join(room: string): Promise<Member[]> {
    const reply = await this.tracked(this.unsettled.rooms, [room], { type: 'subscribe', room });
    const members = reply.type === 'subscribed' ? reply.members : [];
    this.rooms.add(room);
    this.emit('joined', { room, members, rejoined: false });
    return members;
  }

  async leave(room: string): Promise<void> {
    this.rooms.delete(room);
    await this.tracked(this.unsettled.rooms, [room], { type: 'unsubscribe', room });
  }

  async watch(users: readonly string[]): Promise<Record<string, PresenceStatus>> {
    for (const user of users) if (!this.watched.has(user)) this.watched.set(user, undefined);
    const states: Record<string, PresenceStatus> = {};
    for (const chunk of chunks(users)) {
      const reply = await this.tracked(this.unsettled.users, chunk, { type: 'watch', users: chunk });
      if (reply.type !== 'watching') continue;
      Object.assign(states, reply.users);
      for (const [user, status] of Object.entries(reply.users)) this.observe(user, status, true);
      this.emit('watching', { users: reply.users });
    }
    return states;
  }

  async unwatch(users: readonly string[]): Promise<void> {
    for (const user of users) this.watched.delete(user);
    for (const chunk of chunks(users)) await this.tracked(this.unsettled.users, chunk, { type: 'unwatch', users: chunk });
  }

  /**
   * A request that changes what the session holds of `names`. They are
   * unsettled while it is in flight and stay so when its outcome is unknown
   * (`closed`, `timeout`); any answer of the server settles them, and so does
   * `not_connected` for names that were settled before (nothing was sent).
   */
  private async tracked(unsettled: Set<string>, names: readonly string[], frame: { type: string } & Record<string, unknown>): Promise<ServerFrame> {
    const settledBefore = names.filter((name) => !unsettled.has(name));
    for (const name of names) unsettled.add(name);
    try {
      const reply = await this.request(frame);
      for (const name of names) unsettled.delete(name);
      return reply;
    } catch (error) {
      const code = (error as SwitchboardError).code;
      if (code === 'not_connected') for (const name of settledBefore) unsettled.delete(name);
      else if (!UNKNOWN_OUTCOME.has(code)) for (const name of names) unsettled.delete(name);
      throw error;
    }
  }

  async presence(users: readonly string[]): Promise<Record<string, PresenceStatus>> {
    const states: Record<string, PresenceStatus> = {};
    for (const chunk of chunks(users)) {
      const reply = await this.request({ type: 'presence', users: chunk });
      if (reply.type === 'presence' && reply.user === undefined) Object.assign(states, reply.users);
    }
    return states;
  }

  statusOf(user: string): PresenceStatus | undefined {
    return this.watched.get(user);
  }

  /**
   * A status from the server. `presence` events report changes: a push is
   * one; a watch answer is one only when it differs from what was known
   * before (a change missed while reconnecting), not the first answer.
   */
  observe(user: string, status: PresenceStatus, fromWatch: boolean): void {
    if (!this.watched.has(user)) return;
    const before = this.watched.get(user);
    this.watched.set(user, status);
    if (before !== status && !(fromWatch && before === undefined)) this.emit('presence', { user, status });
  }

  /** On a new session: rooms joined and users watched again. `current` says whether that connection is still the one. */
  restore(current: () => boolean): void {
    // The new session holds nothing of the old one: settled, as empty.
    this.unsettled.rooms.clear();
    this.unsettled.users.clear();
    this.rejoin(this.rooms, current);
    if (this.watched.size > 0) this.watch([...this.watched.keys()]).catch((error: SwitchboardError) => current() && this.emit('error', error));
  }

  /**
   * On a resumed session: the server is back in the session's rooms and
   * watches, so only the unsettled ones are asked for again — joined or left,
   * watched or unwatched, as the client now wants them. The other watched
   * users' status is queried: a status equal to the known one reports
   * nothing, so a push the replay did carry is not reported twice.
   */
  resumed(current: () => boolean): void {
    const fail = (error: SwitchboardError) => current() && this.emit('error', error);
    const known = [...this.watched.keys()].filter((user) => !this.unsettled.users.has(user));
    const rooms = [...this.unsettled.rooms];
    this.rejoin(rooms.filter((room) => this.rooms.has(room)), current);
    for (const room of rooms.filter((room) => !this.rooms.has(room))) {
      this.tracked(this.unsettled.rooms, [room], { type: 'unsubscribe', room }).catch((error: SwitchboardError) => {
        if (error.code !== 'not_subscribed') fail(error); // not_subscribed: the session did not hold it after all
      });
    }
    const users = [...this.unsettled.users];
    const rewatch = users.filter((user) => this.watched.has(user));
    const drop = users.filter((user) => !this.watched.has(user));
    if (rewatch.length > 0) this.watch(rewatch).catch(fail);
    for (const chunk of chunks(drop)) this.tracked(this.unsettled.users, chunk, { type: 'unwatch', users: chunk }).catch(fail);
    if (known.length === 0) return;
    this.presence(known).then((states) => {
      if (!current()) return;
      for (const [user, status] of Object.entries(states)) this.observe(user, status, true);
    }, fail);
  }

  private rejoin(rooms: Iterable<string>, current: () => boolean): void {
    for (const room of rooms) {
      this.tracked(this.unsettled.rooms, [room], { type: 'subscribe', room }).then(
        (reply) => reply.type === 'subscribed' && this.emit('joined', { room, members: reply.members, rejoined: true }),
        (error: SwitchboardError) => {
          if (!current()) return; // that connection is gone; the next one rejoins
          if (REFUSALS.has(error.code)) this.rooms.delete(room); // asking again would be refused again
          this.emit('error', error);
        },
      );
    }
  }
}

function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += USERS_PER_FRAME) out.push(items.slice(i, i + USERS_PER_FRAME));
  return out;
}
