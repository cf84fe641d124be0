// Resume buffers in Redis, for a cluster: any node may resume any session.
//
//   {s:<session>}resume   HASH user, status (live|away|resuming), node, epoch,
//                              seq, state (JSON), deadline (Redis ms, while away),
//                              overflow (set once an append did not fit),
//                              taken (while resuming: how many the resume handed over),
//                              released, was (while away after a reaper's release:
//                              the lease, and the status before, for a reclaim)
//   {s:<session>}buffer   LIST "<seq>:<encoded frame>", oldest first
//   {u:<user>}resumable   ZSET "<device>/<session>" → deadline   away and resuming
//   {r:<room>}resumable   ZSET "<session>" → deadline             sessions (Indexes,
//                                                                  resume-store.ts)
//   {n:<lease>}resume     SET  the sessions the node of that lease holds (live or resuming)
//
// A node killed with -9 cannot send its sessions away: they hang on its lease
// (presence/lease-keeper.ts), and the survivor that reaps the lease releases
// each (`release`, fenced by the lease id), which starts their windows. A node
// that was alive after all (its lease lapsed while Redis failed over) reclaims
// them all when it renews, before it registers its connections again, and
// hands what was kept for them meanwhile to the listener (`onReclaimed`).
//
// Every step is one Lua script over the two keys of one session, which share a
// hash slot (`{s:…}`): atomic on one server and on a Redis Cluster alike. The
// indexes live in their user's and room's slots, so they are written after
// the step, one script per index; an entry written late or left behind only
// costs a sender an append that answers `gone`. The window is judged by Redis's clock (TIME in the
// scripts), and while a session is away both keys carry it as their TTL, so
// Redis itself removes what a closed session leaves once the window is over —
// whether or not any node is still alive to clean up.
//
//   node A: away(claim) ──► window starts (TTL)        sender: append ──► 'queued'
//   node B: resume(session) ──► epoch + 1, gets the buffer ──► registers routes
//           ──► back(claim) ──► drops it, takes what came meanwhile; appends now 'live'
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RedisClient } from '../bus/redis-clients';
import type { Logger } from '../log/logger';
import type { LeaseHolder, LeaseKeeper, Standing } from '../presence/lease-keeper';
import { NodeLease } from '../presence/node-lease';
import type {
  AppendResult,
  BackResult,
  BufferedMessage,
  Claim,
  ReclaimListener,
  ReclaimResult,
  ResumeRefusal,
  ResumeResult,
  ResumeState,
  ResumeStore,
  ResumeStoreOptions,
} from './resume-store';
import { EMPTY_STATE } from './resume-store';

/** A session this node holds: its claim once the step claiming it answered, and whether that claim's resume has not reached `back` yet. */
interface Held {
  readonly session: string;
  claim: Claim | undefined;
  resuming: boolean;
  /** Being sent away or ended by its node. */
  leaving: boolean;
}

/** What save.lua answers for 'away': the deadline (0: ended at once), user, device, the state before and after. */
type AwayReply = [deadline: number, user: string, device: string, oldState: string, state: string];

interface Scripts {
  sbResumeOpen(hash: string, user: string, node: string, state: string, device: string): Promise<number>;
  sbResumeSave(hash: string, buffer: string, mode: 'save' | 'away', fence: 'epoch' | 'node', by: string, state: string, windowMs: number): Promise<number | AwayReply>;
  sbResumeAppend(hash: string, buffer: string, data: string, limit: number, deadHolder: string): Promise<Exclude<AppendResult, 'live'> | `live ${string}`>;
  sbResumeTake(hash: string, buffer: string, user: string, node: string): Promise<[ResumeRefusal, device?: string, state?: string, holder?: string] | ['ok', number, string, string[], string]>;
  sbResumeBack(hash: string, buffer: string, epoch: number): Promise<['taken'] | ['overflow', string] | ['ok', string[], string]>;
  sbResumeEnd(hash: string, buffer: string, epoch: number): Promise<0 | [1, string]>;
  sbResumeReclaim(
    hash: string,
    buffer: string,
    epoch: number,
    holder: string,
    user: string,
    device: string,
    status: 'live' | 'resuming',
  ): Promise<['held' | 'released', string[], string] | ['opened'] | ['lost']>;
  sbResumeList(index: string, deadline: number | '+inf', entry: string): Promise<number>;
  sbResumeUnlist(index: string, entry: string): Promise<number>;
  sbResumeListed(index: string): Promise<string[]>;
}

const lua = (name: string) => readFileSync(join(__dirname, 'lua', `${name}.lua`), 'utf8');

export interface RedisResumeStoreOptions extends ResumeStoreOptions {
  redis: RedisClient;
  prefix: string;
  /** The node's lease: held sessions hang on it, and its reaper releases a dead node's. Absent: no reaping (contract tests). */
  lease?: LeaseKeeper;
  logger?: Logger;
}

export class RedisResumeStore implements ResumeStore, LeaseHolder {
  readonly name = 'resume';
  private readonly lease: LeaseKeeper | undefined;
  private readonly logger: Logger | undefined;
  /** The sessions this node holds (with their claim once the step that claims them answered), and whether Redis may lack some of them under the current lease. */
  private readonly held = new Map<string, Held>();
  private heldDirty = false;
  /** Held sessions to reclaim since the lease was lost (see the top). */
  private readonly toReclaim = new Set<string>();
  private reclaimed: ReclaimListener | undefined;
  private readonly redis: RedisClient & Scripts;
  private readonly prefix: string;
  private readonly node: string;
  private readonly windowMs: number;
  private readonly limit: number;

  constructor(options: RedisResumeStoreOptions) {
    const { redis } = options;
    redis.defineCommand('sbResumeOpen', { numberOfKeys: 1, lua: lua('open') });
    redis.defineCommand('sbResumeSave', { numberOfKeys: 2, lua: lua('save') });
    redis.defineCommand('sbResumeAppend', { numberOfKeys: 2, lua: lua('append') });
    redis.defineCommand('sbResumeTake', { numberOfKeys: 2, lua: lua('resume') });
    redis.defineCommand('sbResumeBack', { numberOfKeys: 2, lua: lua('back') });
    redis.defineCommand('sbResumeEnd', { numberOfKeys: 2, lua: lua('end') });
    redis.defineCommand('sbResumeReclaim', { numberOfKeys: 2, lua: lua('reclaim') });
    redis.defineCommand('sbResumeList', { numberOfKeys: 1, lua: lua('list') });
    redis.defineCommand('sbResumeListed', { numberOfKeys: 1, lua: lua('listed') });
    redis.defineCommand('sbResumeUnlist', { numberOfKeys: 1, lua: lua('unlist') });
    this.redis = redis as RedisClient & Scripts;
    this.prefix = options.prefix;
    this.node = options.node;
    this.windowMs = options.windowMs;
    this.limit = options.limit;
    this.lease = options.lease;
    this.logger = options.logger;
  }

  async start(): Promise<void> {
    await this.lease?.start(this);
  }

  // ── the sessions this node holds, on its lease ──────────────────────────

  /**
   * What a session records as its holder: the node's lease id when it has one (so that a resume
   * finding the holder dead can tell, and release it), else the node id.
   */
  private holder(): string {
    return this.lease?.id ?? this.node;
  }

  private async holderIsDead(holder: string | undefined): Promise<boolean> {
    if (this.lease === undefined || holder === undefined || !holder.includes('#')) return false;
    const [live] = await this.lease.live([holder]);
    return live === false;
  }

  private heldKey(lease: string): string {
    return `${this.prefix}{n:${lease}}resume`;
  }

  /**
   * Hangs a session this node now holds on the lease. Sent before the step that claims it and not
   * waited for: on one server the connection keeps the order (a reaper always finds it); a failed
   * write is made again by the next heartbeat (`sync`).
   */
  private hold(session: string): Held {
    const held: Held = { session, claim: undefined, resuming: false, leaving: false };
    if (this.lease === undefined) return held;
    this.held.set(session, held);
    this.redis.sadd(this.heldKey(this.lease.id), session).catch(() => void (this.heldDirty = true));
    return held;
  }

  /** The hold of `claim`, if this node still has it. */
  private heldBy(claim: Claim): Held | undefined {
    const held = this.held.get(claim.session);
    return held?.claim?.epoch === claim.epoch ? held : undefined;
  }

  /**
   * The session is away or ended: the lease no longer answers for it. Only that hold goes: a
   * resume of the same session on this node may have replaced it while this step was on its way.
   */
  private unhold(held: Held | undefined): void {
    if (held === undefined || this.held.get(held.session) !== held) return;
    this.held.delete(held.session);
    this.toReclaim.delete(held.session);
    void this.redis.srem(this.heldKey(this.lease!.id), held.session).catch(() => undefined);
  }

  /** Its node sends the session away or ends it: no reclaim from now on. */
  private leaving(claim: Claim): Held | undefined {
    const held = this.heldBy(claim);
    if (held !== undefined) held.leaving = true;
    return held;
  }

  get standing(): Standing | undefined {
    return this.lease;
  }

  onReclaimed(listener: ReclaimListener): void {
    this.reclaimed = listener;
  }

  /** Reclaims every held session before the node registers its connections again (lease-keeper.ts). */
  leaseLost(): Promise<void> {
    this.heldDirty = true;
    for (const session of this.held.keys()) this.toReclaim.add(session);
    return this.reclaimHeld();
  }

  /** Reclaims what `toReclaim` names; a session whose claiming step has not answered yet waits for the next heartbeat. */
  private async reclaimHeld(): Promise<void> {
    // Not one going away or ending: its step would find it released, and a reclaim after that step
    // would make it live with nobody to serve it. (A reclaim sent before that step goes first.)
    const sessions = [...this.toReclaim].flatMap((session) => {
      const held = this.held.get(session);
      return held?.claim === undefined || held.leaving ? [] : [{ held, claim: held.claim }];
    });
    if (sessions.length === 0) return;
    const results = await Promise.allSettled(
      sessions.map(async ({ held, claim }) => {
        const result = await this.reclaim(claim, held.resuming);
        this.toReclaim.delete(claim.session);
        if (!result.reclaimed) this.unhold(held);
        this.reclaimed?.(claim.session, result);
      }),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    this.logger?.warn({ sessions: sessions.length }, 'the node lease lapsed; reclaimed the sessions it holds');
  }

  unreachable(): void {
    this.heldDirty = true;
  }

  async sync(): Promise<void> {
    if (this.heldDirty && this.lease !== undefined) {
      this.heldDirty = false;
      try {
        if (this.held.size > 0) await this.redis.sadd(this.heldKey(this.lease.id), ...this.held.keys());
      } catch (error) {
        this.heldDirty = true;
        throw error;
      }
    }
    await this.reclaimHeld();
  }

  async reap(lease: string): Promise<void> {
    const key = this.heldKey(lease);
    const node = NodeLease.nodeOf(lease);
    const sessions = await this.redis.smembers(key);
    // Fenced by the lease the sessions were claimed under: one claimed again since is spared.
    for (const session of sessions) await this.release(session, lease);
    await this.redis.del(key);
    if (sessions.length > 0) this.logger?.warn({ deadNode: node, sessions: sessions.length }, 'released the sessions of a dead node for resume');
  }

  /** The two keys of a session, in one hash slot. */
  private keys(session: string): [hash: string, buffer: string] {
    const tag = `${this.prefix}{s:${session}}`;
    return [`${tag}resume`, `${tag}buffer`];
  }

  /** A user's index, and a room's. */
  private userIndex(user: string): string {
    return `${this.prefix}{u:${user}}resumable`;
  }

  private roomIndex(room: string): string {
    return `${this.prefix}{r:${room}}resumable`;
  }

  async open(session: string, user: string, device: string, state: ResumeState = EMPTY_STATE): Promise<Claim> {
    const [hash] = this.keys(session);
    const held = this.hold(session);
    if ((await this.redis.sbResumeOpen(hash, user, this.holder(), JSON.stringify(state), device)) !== 1) throw new Error(`resume session ${session} exists already`);
    const claim = { session, user, device, epoch: 1 };
    held.claim = claim;
    await this.listHeld(user, device, session);
    return claim;
  }

  async save(claim: Claim, state: ResumeState): Promise<boolean> {
    return (await this.redis.sbResumeSave(...this.keys(claim.session), 'save', 'epoch', String(claim.epoch), JSON.stringify(state), this.windowMs)) === 1;
  }

  async away(claim: Claim, state?: ResumeState): Promise<boolean> {
    const encoded = state === undefined ? '' : JSON.stringify(state);
    const held = this.leaving(claim);
    const away = await this.listAway(claim.session, await this.redis.sbResumeSave(...this.keys(claim.session), 'away', 'epoch', String(claim.epoch), encoded, this.windowMs));
    this.unhold(held);
    return away;
  }

  async release(session: string, node: string): Promise<boolean> {
    return this.listAway(session, await this.redis.sbResumeSave(...this.keys(session), 'away', 'node', node, '', this.windowMs));
  }

  /** After a step sent the session away: lists it under its user and rooms (and unlists it from rooms it has left). */
  private async listAway(session: string, reply: number | AwayReply): Promise<boolean> {
    if (!Array.isArray(reply)) return false;
    const [deadline, user, device, oldState, newState] = reply;
    const rooms = parseState(newState).rooms;
    const left = parseState(oldState).rooms.filter((room) => !rooms.includes(room));
    await Promise.all([
      ...left.map((room) => this.redis.sbResumeUnlist(this.roomIndex(room), session)),
      ...(deadline > 0
        ? [this.redis.sbResumeList(this.userIndex(user), deadline, `${device}/${session}`), ...rooms.map((room) => this.redis.sbResumeList(this.roomIndex(room), deadline, session))]
        : []),
    ]);
    return true;
  }

  /**
   * A session held by a node that was killed, before any reaper released it, is `live` to the
   * store; once its holder's lease has expired it keeps messages like an away session (they are
   * handed over when it is released), so its user is never told `peer_offline` meanwhile.
   */
  async append(session: string, data: string): Promise<AppendResult> {
    const keys = this.keys(session);
    const answer = await this.redis.sbResumeAppend(...keys, data, this.limit, '');
    if (!answer.startsWith('live')) return answer as AppendResult;
    const holder = answer.slice(5);
    if (!(await this.holderIsDead(holder))) return 'live';
    const again = await this.redis.sbResumeAppend(...keys, data, this.limit, holder);
    return again.startsWith('live') ? 'live' : (again as AppendResult);
  }

  /**
   * With a lease, a held session is listed under its user too (score +inf), so that a sender whose
   * message reached nobody finds it when its node has died (`append`).
   */
  private async listHeld(user: string, device: string, session: string): Promise<void> {
    if (this.lease !== undefined) await this.redis.sbResumeList(this.userIndex(user), '+inf', `${device}/${session}`);
  }

  async resume(session: string, user: string): Promise<ResumeResult> {
    const held = this.hold(session);
    let reply = await this.redis.sbResumeTake(...this.keys(session), user, this.holder());
    // Held by a node whose lease has expired (killed): released here, as its reaper would, and claimed.
    if (reply[0] === 'taken' && (await this.holderIsDead(reply[3]))) {
      await this.release(session, reply[3]!);
      reply = await this.redis.sbResumeTake(...this.keys(session), user, this.holder());
    }
    if (reply[0] !== 'ok') {
      this.unhold(held);
      const [reason, device, state] = reply;
      if (device !== undefined && device !== '' && state !== undefined && state !== '') await this.unlist({ session, user, device }, state);
      return { resumed: false, reason };
    }
    const [, epoch, state, messages, device] = reply;
    const claim = { session, user, device, epoch };
    held.claim = claim;
    held.resuming = true;
    await this.listHeld(user, device, session);
    return { resumed: true, claim, state: parseState(state), messages: messages.map(parseMessage) };
  }

  async back(claim: Claim): Promise<BackResult> {
    const reply = await this.redis.sbResumeBack(...this.keys(claim.session), claim.epoch);
    if (reply[0] === 'taken') return { back: false, reason: 'taken' };
    if (reply[0] === 'overflow') {
      await this.unlist(claim, reply[1]);
      return { back: false, reason: 'overflow' };
    }
    const held = this.heldBy(claim);
    if (held !== undefined) held.resuming = false;
    // Held again: unlisted from its rooms, and from its user's index unless held sessions are listed there.
    await this.unlist(claim, reply[2], this.lease !== undefined);
    return { back: true, messages: reply[1].map(parseMessage) };
  }

  async reclaim(claim: Claim, resuming: boolean): Promise<ReclaimResult> {
    const { session, user, device } = claim;
    const reply = await this.redis.sbResumeReclaim(...this.keys(session), claim.epoch, this.holder(), user, device, resuming ? 'resuming' : 'live');
    if (reply[0] === 'lost') return { reclaimed: false };
    // Listed while it was away: held again, so in no room, and under its user only if held sessions are listed there.
    if (reply[0] === 'released') await this.unlist(claim, reply[2], this.lease !== undefined);
    if (reply[0] !== 'held') await this.listHeld(user, device, session);
    return { reclaimed: true, messages: reply[0] === 'opened' ? [] : reply[1].map(parseMessage) };
  }

  /** Drops the session's entries from its user's index (unless `keepUser`) and from those of the rooms in `state`. */
  private async unlist(owner: Pick<Claim, 'session' | 'user' | 'device'>, state: string, keepUser = false): Promise<void> {
    const { session, user, device } = owner;
    await Promise.all([
      keepUser ? undefined : this.redis.sbResumeUnlist(this.userIndex(user), `${device}/${session}`),
      ...parseState(state).rooms.map((room) => this.redis.sbResumeUnlist(this.roomIndex(room), session)),
    ]);
  }

  async resumable(user: string, device?: string): Promise<string[]> {
    const entries = await this.redis.sbResumeListed(this.userIndex(user));
    const sessions: string[] = [];
    for (const entry of entries) {
      const slash = entry.lastIndexOf('/');
      if (device === undefined || entry.slice(0, slash) === device) sessions.push(entry.slice(slash + 1));
    }
    return sessions;
  }

  resumableInRoom(room: string): Promise<string[]> {
    return this.redis.sbResumeListed(this.roomIndex(room));
  }

  async end(claim: Claim): Promise<boolean> {
    this.unhold(this.leaving(claim));
    const reply = await this.redis.sbResumeEnd(...this.keys(claim.session), claim.epoch);
    if (reply === 0) return false;
    await this.unlist(claim, reply[1]);
    return true;
  }

  /** Leaves the lease; sessions still held (none after a drain) are left to it, for a survivor to release. The connection is the caller's. */
  async close(): Promise<void> {
    const lease = this.lease;
    if (lease === undefined) return;
    await lease.leave(this, async () => {
      if (this.held.size > 0) return false;
      await this.redis.del(this.heldKey(lease.id));
      return true;
    });
  }
}

function parseMessage(entry: string): BufferedMessage {
  const colon = entry.indexOf(':');
  return { seq: Number(entry.slice(0, colon)), data: entry.slice(colon + 1) };
}

/** Written by this module only (open, save, away), so its shape is known. */
function parseState(json: string): ResumeState {
  const state = JSON.parse(json) as ResumeState;
  return { rooms: state.rooms, watches: state.watches };
}
