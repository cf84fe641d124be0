// What a client has joined and watched, kept across connections: rooms are
// joined and users watched again on every new connection (until leave /
// unwatch), and a watched user's status that changed meanwhile is reported.
// Resume (SPEC §3.9) will make the server keep this; until then the client does.
import type { ClientEvents } from './events';
import type { SwitchboardError } from './errors';
import type { Member, PresenceStatus, ServerFrame } from './frames';

type Request = (frame: { type: string } & Record<string, unknown>) => Promise<ServerFrame>;
type Emit = <K extends keyof ClientEvents>(name: K, value: ClientEvents[K]) => void;

/** A watch or presence list holds at most this many users (SPEC §3.4). */
const USERS_PER_FRAME = 100;
/** Answers to a rejoin that mean the room is not for this connection any more. */
const REFUSALS: ReadonlySet<string> = new Set(['forbidden', 'limit_exceeded', 'bad_message']);

export class Subscriptions {
  private readonly rooms = new Set<string>();
  /** Watched users and their last known status. */
  private readonly watched = new Map<string, PresenceStatus | undefined>();

  constructor(
    private readonly request: Request,
    private readonly emit: Emit,
  ) {}

  async join(room: string): Promise<Member[]> {
    const reply = await this.request({ type: 'subscribe', room });
    const members = reply.type === 'subscribed' ? reply.members : [];
    this.rooms.add(room);
    this.emit('joined', { room, members, rejoined: false });
    return members;
  }

  async leave(room: string): Promise<void> {
    this.rooms.delete(room);
    await this.request({ type: 'unsubscribe', room });
  }

  async watch(users: readonly string[]): Promise<Record<string, PresenceStatus>> {
    for (const user of users) if (!this.watched.has(user)) this.watched.set(user, undefined);
    const states: Record<string, PresenceStatus> = {};
    for (const chunk of chunks(users)) {
      const reply = await this.request({ type: 'watch', users: chunk });
      if (reply.type !== 'watching') continue;
      Object.assign(states, reply.users);
      for (const [user, status] of Object.entries(reply.users)) this.observe(user, status, true);
      this.emit('watching', { users: reply.users });
    }
    return states;
  }

  async unwatch(users: readonly string[]): Promise<void> {
    for (const user of users) this.watched.delete(user);
    for (const chunk of chunks(users)) await this.request({ type: 'unwatch', users: chunk });
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

  /** On a new connection: rooms joined and users watched again. `current` says whether that connection is still the one. */
  restore(current: () => boolean): void {
    for (const room of this.rooms) {
      this.request({ type: 'subscribe', room }).then(
        (reply) => reply.type === 'subscribed' && this.emit('joined', { room, members: reply.members, rejoined: true }),
        (error: SwitchboardError) => {
          if (!current()) return; // that connection is gone; the next one rejoins
          if (REFUSALS.has(error.code)) this.rooms.delete(room); // asking again would be refused again
          this.emit('error', error);
        },
      );
    }
    if (this.watched.size > 0) this.watch([...this.watched.keys()]).catch((error: SwitchboardError) => current() && this.emit('error', error));
  }
}

function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += USERS_PER_FRAME) out.push(items.slice(i, i + USERS_PER_FRAME));
  return out;
}
