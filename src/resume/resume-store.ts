// Per-session replay buffers for resume (SPEC §3.9): what was addressed to a
// session while its client was away, kept for RESUME_WINDOW_S and at most
// RESUME_BUFFER messages, handed to the node that resumes it. Memory twin in
// memory-resume-store.ts (one process), Redis in redis-resume-store.ts (a
// cluster: any node may resume any session).
//
// A session moves through these states, each step atomic in the store:
//
//   open ──► live ──away──► away ──resume──► resuming ──back──► live ──► …
//             ▲   (window    │  (the claim's  │ (drops what resume
//             │    starts)   │   epoch + 1;   │  handed over, takes
//             │              │   hands over   │  what came meanwhile)
//             │              │   the buffer)  └─away/release─► away (lost mid-resume:
//             │              │                     the whole buffer is kept)
//             │              └── window over / overflow / end ──► gone
//             ├── release(node): a dead node's sessions go away, for a survivor's reaper
//             └── reclaim: its node was alive after all (its lease lapsed in a Redis outage or
//                 a stall, and a peer released the session, or Redis lost it): live again
//
// Guarantees:
// - A session id is bound to the user that opened it: resuming it as another
//   user is refused (`forbidden`) and changes nothing.
// - Ordering: the messages of one session come out in the order their appends
//   took effect in the store (a per-session sequence numbers them; it never
//   goes back, across resumes).
// - Exactly once: every message appended `queued` is handed over by exactly
//   one completed resume — in `resume`'s answer or in the `back` that ends it
//   — or the session is refused later (`overflow`, `expired`), never silently
//   skipped. Two nodes racing to resume one session: one wins and gets the
//   buffer, the other is refused (`taken`). An append racing a resume is
//   either in the resume's answer or in the `back` that ends it: the session
//   keeps buffering while it is `resuming`, so the resuming node registers its
//   live routes first and then calls `back`; from then on an append answers
//   `live` and the sender delivers like to any connected device.
// - A resume that does not complete loses nothing: `resume` hands the buffer
//   over but keeps it until `back`. If the session goes away first (its new
//   connection dropped, its node died and was released, or the node lost the
//   resume's reply and calls `release` for itself), the next resume hands the
//   same messages over again with the same `seq`: at least once on that fault
//   path, and the sequence lets the receiver drop what it already had.
// - Fencing: a claim carries an epoch; every later step of its holder (back,
//   save, away, end) is refused once another claim superseded it, so a slow
//   node can never mark away, overwrite or end a session that moved on.
// - Bounded, never a silent gap: an append past RESUME_BUFFER is not kept and
//   marks the session overflowed (`overflow` to that sender and every later
//   one); its resume is then refused with `overflow`, and the session is gone.
// - Expiry is judged by the store's clock (Redis's TIME, never a node's
//   Date.now()): past the window, a resume is refused with `expired`, appends
//   answer `gone`, and nothing of the session is left (Redis keys carry the
//   window as their TTL). A session the store does not know — never existed,
//   or already removed — is `expired` too: after the window the two cannot be
//   told apart, by design, since nothing is kept.
// - After `back`, the messages are the node's alone: a connection that dies
//   after `back` and before writing them loses them (as it would lose a live
//   message in its send buffer).
//
// Indexes: while a session is away or resuming it is listed under its user
// (with its device) and under each room it was in, for senders whose message
// reached no connected device (`resumable`, `resumableInRoom`). `away` and
// `release` list it, `back` and `end` unlist it; an entry outliving its
// session (a resume refused, a window over) is harmless: its appends answer
// `gone`, and it expires with the window.
//
// While `live` or `resuming` a session has no deadline: it is closed with
// `away` by its node, or — when its node died (kill -9) — with `release` by a
// survivor that reaps the dead node's lease.
//
// Reclaim: a node is judged dead by its lease, and a lease also lapses when
// the node merely could not renew it (a Redis restart or failover, a long
// stall). The node finds out at its next renewal and reclaims every session it
// still serves, fenced by the claim's epoch: one released meanwhile is live
// again and hands over what was kept for it (for the node to deliver on the
// open connection), one Redis lost is opened again, one another node resumed
// meanwhile is lost to this connection. Without it, a message kept for a
// released session whose client never left would wait for a resume that never
// comes.
import type { Standing } from '../presence/lease-keeper';
import type { MaybePromise } from '../util/maybe-promise';

/** What a resumed connection is given back besides its messages. */
export interface ResumeState {
  rooms: string[];
  /** Users watched for presence (SPEC §3.4). */
  watches: string[];
}

/** A node's hold on a session. `epoch` fences every later step (see the header). */
export interface Claim {
  readonly session: string;
  readonly user: string;
  /** The device the session was opened for: a resume continues it, and messages naming it are kept for it. */
  readonly device: string;
  readonly epoch: number;
}

/** A message kept for an away session: `data` is the encoded frame, as it would have been sent. */
export interface BufferedMessage {
  seq: number;
  data: string;
}

/** Why a resume is refused (the client hears `"resumed":false` with the reason). */
export type ResumeRefusal = 'expired' | 'forbidden' | 'overflow' | 'taken';

export type ResumeResult =
  | { resumed: true; claim: Claim; state: ResumeState; messages: BufferedMessage[] }
  | { resumed: false; reason: ResumeRefusal };

/** What a reclaim found: the session is this node's again, with what was kept for it meanwhile, or another claim superseded it. */
export type ReclaimResult = { reclaimed: true; messages: BufferedMessage[] } | { reclaimed: false };

/** Hears what the store took back by itself for a session this node serves: deliver `messages`, or end the connection when lost. */
export type ReclaimListener = (session: string, result: ReclaimResult) => void;

export type BackResult = { back: true; messages: BufferedMessage[] } | { back: false; reason: 'overflow' | 'taken' };

/**
 * What an append did:
 * - `queued`: kept for replay (the sender hears `ack … queued:true`);
 * - `live`: the session is connected; nothing was kept, deliver as usual;
 * - `overflow`: the buffer is full, nothing was kept, the session's resume will be refused;
 * - `gone`: no such session, or its window is over.
 */
export type AppendResult = 'queued' | 'live' | 'overflow' | 'gone';

export interface ResumeStoreOptions {
  /** The node's id: what `release` names when the node is gone. */
  node: string;
  /** RESUME_WINDOW_S in ms; 0 ends a session as soon as it is away. */
  windowMs: number;
  /** RESUME_BUFFER: messages kept per away session. */
  limit: number;
}

export interface ResumeStore {
  /** Starts background work (Redis: joins the node's lease, whose reaper releases a dead node's sessions). */
  start?(): Promise<void>;
  /** Opens a new live session held by this node; rejects if the id is taken (ids are random: a bug). */
  open(session: string, user: string, device: string, state?: ResumeState): Promise<Claim>;
  /** Records the rooms and watches to restore; false when the claim was superseded. */
  save(claim: Claim, state: ResumeState): Promise<boolean>;
  /** The connection closed: the window starts now (store clock). False when the claim was superseded. */
  away(claim: Claim, state?: ResumeState): Promise<boolean>;
  /** A dead node's session goes away as its last saved state, if `node` still holds it. */
  release(session: string, node: string): Promise<boolean>;
  /** Keeps a message for an away (or resuming) session. */
  append(session: string, data: string): MaybePromise<AppendResult>;
  /** Claims an away session for `user` on this node and takes its buffer. */
  resume(session: string, user: string): Promise<ResumeResult>;
  /** Ends a resume once the node's live routes are in place: takes what came meanwhile, and the session is live. */
  back(claim: Claim): Promise<BackResult>;
  /**
   * Takes back a session this node still serves after its hold lapsed (see Reclaim at the top).
   * `resuming`: the claim's resume has not reached `back` yet (a session opened again stays so).
   */
  reclaim(claim: Claim, resuming: boolean): Promise<ReclaimResult>;
  /**
   * Whether this node's hold on its sessions is in question (Redis: its lease may have lapsed
   * unnoticed); absent where a hold never lapses by itself (one process).
   */
  readonly standing?: Standing;
  /** Registers who hears the reclaims the store makes by itself (Redis: after the node's lease lapsed). */
  onReclaimed?(listener: ReclaimListener): void;
  /** The session ends for good (no resume wanted): everything of it is removed. False when superseded. */
  end(claim: Claim): Promise<boolean>;
  /**
   * The sessions of `user` (of `device` only, when named) that are away or resuming: where a
   * message that reached no connected device is kept. May name a session whose window just ended
   * (its append then answers `gone`).
   */
  resumable(user: string, device?: string): MaybePromise<string[]>;
  /** The sessions away or resuming that were members of `room` when they went away. */
  resumableInRoom(room: string): MaybePromise<string[]>;
  close(): Promise<void>;
}

export const EMPTY_STATE: ResumeState = Object.freeze({ rooms: [], watches: [] });
