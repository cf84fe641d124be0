// Resume buffers in one process (the in-memory bus). Every step runs without
// an await, so each is atomic by construction; the window is judged by this
// process's monotonic clock, the only clock there is. Several stores may share
// one table to stand for several nodes (the contract suite does).
import type { AppendResult, BackResult, BufferedMessage, Claim, ReclaimResult, ResumeResult, ResumeState, ResumeStore, ResumeStoreOptions } from './resume-store';
import { EMPTY_STATE } from './resume-store';

/** The buffer of every session that has none: replaced, never pushed to (frozen, so a push would throw). */
const NO_MESSAGES = Object.freeze([]) as unknown as BufferedMessage[];

interface Session {
  readonly user: string;
  readonly device: string;
  status: 'live' | 'away' | 'resuming';
  /** The node holding it ('' while away). */
  node: string;
  epoch: number;
  /** The last sequence number given. */
  seq: number;
  overflow: boolean;
  state: ResumeState;
  buffer: BufferedMessage[];
  /** While resuming: how many of the buffer's first messages `resume` handed over (dropped by `back`). */
  taken: number;
  /** While away: removes the session when the window is over. */
  timer?: NodeJS.Timeout;
  /** While away after a release: the status it had, for a reclaim. */
  released?: 'live' | 'resuming';
}

/** The sessions of every store built on it. */
export class MemoryResumeTable {
  readonly sessions = new Map<string, Session>();
  /** Away and resuming sessions by user, then by room (resume-store.ts, Indexes). */
  private readonly byUser = new Map<string, Set<string>>();
  private readonly byRoom = new Map<string, Set<string>>();

  remove(id: string): void {
    const session = this.sessions.get(id);
    if (session === undefined) return;
    if (session.timer !== undefined) clearTimeout(session.timer);
    this.unlist(id, session);
    this.sessions.delete(id);
  }

  list(id: string, session: Session): void {
    addTo(this.byUser, session.user, id);
    for (const room of session.state.rooms) addTo(this.byRoom, room, id);
  }

  unlist(id: string, session: Session): void {
    removeFrom(this.byUser, session.user, id);
    for (const room of session.state.rooms) removeFrom(this.byRoom, room, id);
  }

  listedFor(user: string, device: string | undefined): string[] {
    const ids = [...(this.byUser.get(user) ?? [])];
    return device === undefined ? ids : ids.filter((id) => this.sessions.get(id)?.device === device);
  }

  listedIn(room: string): string[] {
    return [...(this.byRoom.get(room) ?? [])];
  }

  clear(): void {
    for (const id of [...this.sessions.keys()]) this.remove(id);
  }
}

export interface MemoryResumeStoreOptions extends ResumeStoreOptions {
  /** Shared with other stores standing for other nodes; a table of its own by default. */
  table?: MemoryResumeTable;
}

export class MemoryResumeStore implements ResumeStore {
  private readonly table: MemoryResumeTable;
  private readonly owned: boolean;
  private readonly node: string;
  private readonly windowMs: number;
  private readonly limit: number;

  constructor(options: MemoryResumeStoreOptions) {
    this.owned = options.table === undefined;
    this.table = options.table ?? new MemoryResumeTable();
    this.node = options.node;
    this.windowMs = options.windowMs;
    this.limit = options.limit;
  }

  open(id: string, user: string, device: string, state: ResumeState = EMPTY_STATE): Promise<Claim> {
    if (this.table.sessions.has(id)) return Promise.reject(new Error(`resume session ${id} exists already`));
    this.table.sessions.set(id, this.held(user, device, 'live', 1, state));
    return Promise.resolve({ session: id, user, device, epoch: 1 });
  }

  save(claim: Claim, state: ResumeState): Promise<boolean> {
    const session = this.heldBy(claim);
    if (session !== undefined) session.state = copy(state);
    return Promise.resolve(session !== undefined);
  }

  away(claim: Claim, state?: ResumeState): Promise<boolean> {
    const session = this.heldBy(claim);
    if (session === undefined) return Promise.resolve(false);
    // Unlisted under the state it was listed with (a session sent away mid-resume), listed again under the new one.
    this.table.unlist(claim.session, session);
    if (state !== undefined) session.state = copy(state);
    this.startWindow(claim.session, session);
    return Promise.resolve(true);
  }

  release(id: string, node: string): Promise<boolean> {
    const session = this.table.sessions.get(id);
    if (session === undefined || session.status === 'away' || session.node !== node) return Promise.resolve(false);
    const was = session.status;
    this.startWindow(id, session, true);
    session.released = was;
    return Promise.resolve(true);
  }

  /** In one process a node's hold never lapses by itself; this is the same step as in Redis, for the contract. */
  reclaim(claim: Claim, resuming: boolean): Promise<ReclaimResult> {
    const { session: id, user, device, epoch } = claim;
    const session = this.table.sessions.get(id);
    if (session === undefined) {
      this.table.sessions.set(id, this.held(user, device, resuming ? 'resuming' : 'live', epoch, EMPTY_STATE));
      return Promise.resolve({ reclaimed: true, messages: [] });
    }
    if (session.epoch !== epoch || (session.status === 'away' && session.released === undefined)) return Promise.resolve({ reclaimed: false });
    if (session.status === 'away') {
      clearTimeout(session.timer);
      delete session.timer;
      this.table.unlist(id, session);
      session.status = session.released!;
      delete session.released;
    }
    session.node = this.node;
    if (session.status === 'resuming') return Promise.resolve({ reclaimed: true, messages: [] });
    const messages = session.buffer === NO_MESSAGES ? [] : session.buffer;
    session.buffer = NO_MESSAGES;
    session.overflow = false;
    return Promise.resolve({ reclaimed: true, messages });
  }

  append(id: string, data: string): AppendResult {
    const session = this.table.sessions.get(id);
    if (session === undefined) return 'gone';
    if (session.status === 'live') return 'live';
    if (session.overflow) return 'overflow';
    if (session.buffer.length >= this.limit) {
      session.overflow = true;
      return 'overflow';
    }
    const message = { seq: ++session.seq, data };
    if (session.buffer === NO_MESSAGES) session.buffer = [message];
    else session.buffer.push(message);
    return 'queued';
  }

  resume(id: string, user: string): Promise<ResumeResult> {
    const session = this.table.sessions.get(id);
    if (session === undefined) return Promise.resolve({ resumed: false, reason: 'expired' });
    if (session.user !== user) return Promise.resolve({ resumed: false, reason: 'forbidden' });
    if (session.status !== 'away') return Promise.resolve({ resumed: false, reason: 'taken' });
    if (session.overflow) {
      this.table.remove(id);
      return Promise.resolve({ resumed: false, reason: 'overflow' });
    }
    clearTimeout(session.timer);
    delete session.timer;
    delete session.released;
    session.status = 'resuming';
    session.node = this.node;
    session.epoch += 1;
    // Kept until back: a resume that never gets there (its connection or reply lost) is handed over again.
    session.taken = session.buffer.length;
    const messages = session.buffer.slice();
    return Promise.resolve({ resumed: true, claim: { session: id, user, device: session.device, epoch: session.epoch }, state: copy(session.state), messages });
  }

  back(claim: Claim): Promise<BackResult> {
    const session = this.heldBy(claim);
    if (session?.status !== 'resuming') return Promise.resolve({ back: false, reason: 'taken' });
    if (session.overflow) {
      this.table.remove(claim.session);
      return Promise.resolve({ back: false, reason: 'overflow' });
    }
    session.status = 'live';
    this.table.unlist(claim.session, session);
    const messages = session.buffer.slice(session.taken);
    session.buffer = NO_MESSAGES;
    session.taken = 0;
    return Promise.resolve({ back: true, messages });
  }

  end(claim: Claim): Promise<boolean> {
    if (this.heldBy(claim) === undefined) return Promise.resolve(false);
    this.table.remove(claim.session);
    return Promise.resolve(true);
  }

  resumable(user: string, device?: string): string[] {
    return this.table.listedFor(user, device);
  }

  resumableInRoom(room: string): string[] {
    return this.table.listedIn(room);
  }

  close(): Promise<void> {
    if (this.owned) this.table.clear();
    return Promise.resolve();
  }

  /** A session this node holds, with nothing kept yet (opened, or opened again by a reclaim). */
  private held(user: string, device: string, status: 'live' | 'resuming', epoch: number, state: ResumeState): Session {
    // Most sessions never save rooms nor buffer a message: they share the empty ones (~160 B a session).
    const kept = state === EMPTY_STATE ? EMPTY_STATE : copy(state);
    return { user, device, status, node: this.node, epoch, seq: 0, overflow: false, state: kept, buffer: NO_MESSAGES, taken: 0 };
  }

  /** The session if `claim` still holds it (not away, same epoch). */
  private heldBy(claim: Claim): Session | undefined {
    const session = this.table.sessions.get(claim.session);
    return session !== undefined && session.status !== 'away' && session.epoch === claim.epoch ? session : undefined;
  }

  /** `released`: by a reaper, which keeps what a resume handed over for a reclaim of it. */
  private startWindow(id: string, session: Session, released = false): void {
    if (this.windowMs <= 0) return this.table.remove(id);
    this.table.list(id, session);
    session.status = 'away';
    session.node = '';
    if (!released) session.taken = 0;
    // unref: a session waiting for its client never keeps the process alive.
    session.timer = setTimeout(() => this.table.remove(id), this.windowMs).unref();
  }
}

function addTo(index: Map<string, Set<string>>, key: string, id: string): void {
  let ids = index.get(key);
  if (ids === undefined) index.set(key, (ids = new Set()));
  ids.add(id);
}

function removeFrom(index: Map<string, Set<string>>, key: string, id: string): void {
  const ids = index.get(key);
  if (ids === undefined) return;
  ids.delete(id);
  if (ids.size === 0) index.delete(key);
}

function copy(state: ResumeState): ResumeState {
  return { rooms: [...state.rooms], watches: [...state.watches] };
}
