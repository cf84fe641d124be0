// Resume buffers in Redis, for a cluster: any node may resume any session.
//
//   {s:<session>}resume   HASH user, status (live|away|resuming), node, epoch,
//                              seq, state (JSON), deadline (Redis ms, while away),
//                              overflow (set once an append did not fit),
//                              taken (while resuming: how many the resume handed over)
//   {s:<session>}buffer   LIST "<seq>:<encoded frame>", oldest first
//
// Every step is one Lua script over the two keys of one session, which share a
// hash slot (`{s:…}`; `{r:…}` is a room's): atomic on one server and on a
// Redis Cluster alike. The window is judged by Redis's clock (TIME in the
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
import type { AppendResult, BackResult, BufferedMessage, Claim, ResumeRefusal, ResumeResult, ResumeState, ResumeStore, ResumeStoreOptions } from './resume-store';
import { EMPTY_STATE } from './resume-store';

interface Scripts {
  sbResumeOpen(hash: string, user: string, node: string, state: string): Promise<number>;
  sbResumeSave(hash: string, buffer: string, mode: 'save' | 'away', fence: 'epoch' | 'node', by: string, state: string, windowMs: number): Promise<number>;
  sbResumeAppend(hash: string, buffer: string, data: string, limit: number): Promise<AppendResult>;
  sbResumeTake(hash: string, buffer: string, user: string, node: string): Promise<[ResumeRefusal] | ['ok', number, string, string[]]>;
  sbResumeBack(hash: string, buffer: string, epoch: number): Promise<['taken' | 'overflow'] | ['ok', string[]]>;
  sbResumeEnd(hash: string, buffer: string, epoch: number): Promise<number>;
}

const lua = (name: string) => readFileSync(join(__dirname, 'lua', `${name}.lua`), 'utf8');

export interface RedisResumeStoreOptions extends ResumeStoreOptions {
  redis: RedisClient;
  prefix: string;
}

export class RedisResumeStore implements ResumeStore {
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
    this.redis = redis as RedisClient & Scripts;
    this.prefix = options.prefix;
    this.node = options.node;
    this.windowMs = options.windowMs;
    this.limit = options.limit;
  }

  /** The two keys of a session, in one hash slot. */
  private keys(session: string): [hash: string, buffer: string] {
    const tag = `${this.prefix}{s:${session}}`;
    return [`${tag}resume`, `${tag}buffer`];
  }

  async open(session: string, user: string, state: ResumeState = EMPTY_STATE): Promise<Claim> {
    const [hash] = this.keys(session);
    if ((await this.redis.sbResumeOpen(hash, user, this.node, JSON.stringify(state))) !== 1) throw new Error(`resume session ${session} exists already`);
    return { session, user, epoch: 1 };
  }

  async save(claim: Claim, state: ResumeState): Promise<boolean> {
    return (await this.redis.sbResumeSave(...this.keys(claim.session), 'save', 'epoch', String(claim.epoch), JSON.stringify(state), this.windowMs)) === 1;
  }

  async away(claim: Claim, state?: ResumeState): Promise<boolean> {
    const encoded = state === undefined ? '' : JSON.stringify(state);
    return (await this.redis.sbResumeSave(...this.keys(claim.session), 'away', 'epoch', String(claim.epoch), encoded, this.windowMs)) === 1;
  }

  async release(session: string, node: string): Promise<boolean> {
    return (await this.redis.sbResumeSave(...this.keys(session), 'away', 'node', node, '', this.windowMs)) === 1;
  }

  append(session: string, data: string): Promise<AppendResult> {
    return this.redis.sbResumeAppend(...this.keys(session), data, this.limit);
  }

  async resume(session: string, user: string): Promise<ResumeResult> {
    const reply = await this.redis.sbResumeTake(...this.keys(session), user, this.node);
    if (reply[0] !== 'ok') return { resumed: false, reason: reply[0] };
    const [, epoch, state, messages] = reply;
    return { resumed: true, claim: { session, user, epoch }, state: parseState(state), messages: messages.map(parseMessage) };
  }

  async back(claim: Claim): Promise<BackResult> {
    const reply = await this.redis.sbResumeBack(...this.keys(claim.session), claim.epoch);
    if (reply[0] !== 'ok') return { back: false, reason: reply[0] };
    return { back: true, messages: reply[1].map(parseMessage) };
  }

  async end(claim: Claim): Promise<boolean> {
    return (await this.redis.sbResumeEnd(...this.keys(claim.session), claim.epoch)) === 1;
  }

  /** The Redis connection is the caller's: nothing of its own to close. */
  close(): Promise<void> {
    return Promise.resolve();
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
