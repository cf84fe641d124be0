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
//   {n:<lease>}resume     SET  the sessions the node of that lease holds (live or resuming; held-sessions.ts)
//
// A node killed with -9 cannot send its sessions away: they hang on its lease
// (held-sessions.ts), and the survivor that reaps the lease releases each
// (`release`, fenced by the lease id), which starts their windows. A node that
// was alive after all (its lease lapsed while Redis failed over) reclaims them
// (`reclaim`) when it renews.
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
import type { LeaseKeeper, Standing } from '../presence/lease-keeper';
import { HeldSessions } from './held-sessions';
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

export class RedisResumeStore implements ResumeStore {
  /** The sessions this node holds, on its lease. */
  private readonly holds: HeldSessions;
  private readonly lease: LeaseKeeper | undefined;
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
    this.holds = new HeldSessions({ redis, prefix: options.prefix, node: options.node, lease: options.lease, logger: options.logger, steps: this });
  }

  async start(): Promise<void> {
    await this.holds.start();
  }

  get standing(): Standing | undefined {
    return this.lease;
  }

  onReclaimed(listener: ReclaimListener): void {
    this.holds.onReclaimed(listener);
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
    const held = this.holds.hold(session);
    if ((await this.redis.sbResumeOpen(hash, user, this.holds.holder(), JSON.stringify(state), device)) !== 1) throw new Error(`resume session ${session} exists already`);
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
    const held = this.holds.leaving(claim);
    const away = await this.listAway(claim.session, await this.redis.sbResumeSave(...this.keys(claim.session), 'away', 'epoch', String(claim.epoch), encoded, this.windowMs));
    this.holds.unhold(held);
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
    if (!(await this.holds.holderIsDead(holder))) return 'live';
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
    const held = this.holds.hold(session);
    let reply = await this.redis.sbResumeTake(...this.keys(session), user, this.holds.holder());
    // Held by a node whose lease has expired (killed): released here, as its reaper would, and claimed.
    if (reply[0] === 'taken' && (await this.holds.holderIsDead(reply[3]))) {
      await this.release(session, reply[3]!);
      reply = await this.redis.sbResumeTake(...this.keys(session), user, this.holds.holder());
    }
    if (reply[0] !== 'ok') {
      this.holds.unhold(held);
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
    const held = this.holds.heldBy(claim);
    if (held !== undefined) held.resuming = false;
    // Held again: unlisted from its rooms, and from its user's index unless held sessions are listed there.
    await this.unlist(claim, reply[2], this.lease !== undefined);
    return { back: true, messages: reply[1].map(parseMessage) };
  }

  async reclaim(claim: Claim, resuming: boolean): Promise<ReclaimResult> {
    const { session, user, device } = claim;
    const reply = await this.redis.sbResumeReclaim(...this.keys(session), claim.epoch, this.holds.holder(), user, device, resuming ? 'resuming' : 'live');
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
    this.holds.unhold(this.holds.leaving(claim));
    const reply = await this.redis.sbResumeEnd(...this.keys(claim.session), claim.epoch);
    if (reply === 0) return false;
    await this.unlist(claim, reply[1]);
    return true;
  }

  /** Leaves the lease (held-sessions.ts). The connection is the caller's. */
  close(): Promise<void> {
    return this.holds.close();
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
