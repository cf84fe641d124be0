// One app connection on /ws (SPEC §3): reads and answers client frames. The
// transport only writes and closes; everything the protocol says happens here
// and in the router.
//
// Frame order: each frame is decoded at once and handled as soon as its
// rate-limit decision is known — at once, nearly always. When a decision has to
// wait for the cluster store, that frame and every later one of this session
// wait in `backlog`, so frames are handled in the order they arrived.
//
// Both queues a client can grow are bounded by MAX_BUFFERED_BYTES, like the
// send buffer: frames waiting for a decision (past it a frame is refused with
// `rate_limited`: the client sends faster than the cluster decides), and frames
// for the client before its welcome (past it the connection is closed with
// 4010, as a slow consumer).
//
// Resume (SPEC §3.9, resume/resume-store.ts). The welcome's `session` is the
// session's id in the replay store; `id` is this connection's own (routing,
// presence, kicks), so an old connection still going away and its successor
// never share one.
//
//   new:      attach ──► welcome ("resumed":false)       store.open in the background
//   resumed:  (claimed at upgrade) attach ──► rooms and watches again ──► back
//             ──► welcome ("resumed":true) ──► replay (each message once) ──► newer frames
//   closed:   by the client with 1000, replaced (4009) or rate-limited (4008): the session ends.
//             Otherwise (network, drain 1012, slow consumer 4010, token 4001) it GOES AWAY:
//             it stays in the router as a ghost that keeps what still reaches it (and what its
//             socket never wrote) ──► store.away lists it for senders ──► what it kept so far
//             is appended ──► its channels are unsubscribed (until the bus confirms, what
//             arrives is appended) ──► detach. Shutdown waits for it (router.hold).
import { roomAllowed, type Claims, type TokenVerifier } from '../auth/claims';
import type { Config } from '../config/load';
import { CLOSE, type Close, type ErrorCode } from '../errors/codes';
import { audit } from '../log/audit';
import type { Logger } from '../log/logger';
import type { Metrics } from '../metrics/metrics';
import { decodeClientFrame, type ClientFrame, type DecodeResult } from '../protocol/app-codec';
import { encode } from '../protocol/server-frames';
import type { RateDecision, UserRateLimiter } from '../ratelimit/rate-limiter';
import type { AwayKeeper } from '../resume/away-keeper';
import { framesToReplay } from '../resume/kept-frames';
import type { Standing } from '../presence/lease-keeper';
import type { Claim, ReclaimResult, ResumeStore } from '../resume/resume-store';
import { withinClusterWait } from '../routing/deadline';
import { BusUnavailableError, type DirectOutcome, type Recipient, type Router } from '../routing/router';
import type { Connection } from '../transport/connection';
import type { WsHandler } from '../transport/http-types';
import { whenReady, type MaybePromise } from '../util/maybe-promise';
import { randomId } from '../util/random-id';
import type { Drainable } from './drain';
import type { ExpiryWheel } from './expiry-wheel';
import { Ghost } from './ghost';
import { HeldFrames } from './held-frames';
import type { ResumeOutcome } from './resume-claim';

export interface SessionDeps {
  config: Config;
  router: Router;
  limiter: UserRateLimiter;
  verifier: TokenVerifier;
  metrics: Metrics;
  logger: Logger;
  /** This node's open sessions (drain, health); a session is in it from open to close. */
  sessions: Set<ClientSession>;
  /**
   * The sessions this node serves, by session id, from open until detached (going away
   * included): where the store's reclaims go (resume-store.ts, Reclaim).
   */
  serving: Map<string, ClientSession>;
  /** Gives back the connection slot admission granted (node and per-IP counts). */
  limits: { release(ipKey: string): void };
  /** Closes sessions whose token expired without a refresh (4001). */
  expiries: ExpiryWheel<ClientSession>;
  /** Replay buffers (SPEC §3.9); unused when RESUME_WINDOW_S is 0. */
  resumeStore: ResumeStore;
  keeper: AwayKeeper;
}

const utf8 = new TextDecoder('utf-8');
const BINARY_REJECTED: DecodeResult = { ok: false, error: { code: 'bad_message', message: 'binary frames are not accepted; send JSON text' } };

export function newSessionId(): string {
  return randomId(16);
}

/** The type of a replayed frame: counted by signaling_replayed_messages_total, not by type (a kept frame's type is not stored). */
const REPLAYED = '';

/** Server closes after which the session ends rather than going away (nobody should resume it). */
const ENDS_SESSION: ReadonlySet<number> = new Set([CLOSE.replaced.code, CLOSE.rate_limited.code]);

export class ClientSession implements Recipient, Drainable, WsHandler {
  /** This connection's id (routing, presence, kicks). */
  readonly id: string;
  /** The session's id in the replay store: the welcome's `session`, kept across resumes. */
  readonly session: string;
  readonly user: string;
  readonly device: string;
  /** The session's hold in the replay store: a promise while `open` runs; undefined when resume is off or the store failed. */
  private claim: MaybePromise<Claim | undefined>;
  /** The rooms and watches being written to the store (`saveState`): 1 while a write runs, 2 when another must follow it. */
  private stateWrite: 0 | 1 | 2 = 0;
  /** While a resume is completing: ids of the messages that arrived live, which the replay skips. */
  private seenLive: Set<string> | undefined;
  /** Set when the socket closed and the session went away: what still reaches it is kept for its resume. */
  private ghost: Ghost | undefined;
  /** What arrived while the node's standing was in question (held-frames.ts). */
  private held: HeldFrames | undefined;
  /** The server's close code, when it closed the socket. */
  private closedWith: number | undefined;
  /** Made on first send: an idle connection does not carry it (bench W4). */
  private sender: string | undefined;
  private claims: Claims;
  /** The expiry wheel bucket this session waits in; undefined when its token has no `exp`. */
  private expiryBucket: number | undefined;
  private strikes = 0;
  private strikeWindowEnd = 0;
  private closed = false;
  /** Set by a server-initiated close, before the transport reports the socket closed. */
  private closing = false;
  private readonly openedAt = performance.now();
  private logger: Logger | undefined;
  private welcomed = false;
  /** Frames for this session that arrived before its welcome was sent (made on first use), with their message ids. */
  private early: [frame: string, type: string, id: string | undefined][] | undefined;
  private earlyBytes = 0;
  /** The last frame still waiting for its rate-limit decision; later frames queue behind it. */
  private backlog: Promise<void> | undefined;
  /** Bytes of client frames waiting in `backlog`. */
  private backlogBytes = 0;

  constructor(
    private readonly deps: SessionDeps,
    private readonly conn: Connection,
    claims: Claims,
    /** The admission's per-IP key, given back on close. */
    private readonly ipKey: string,
    /** Asked for with `?resume=`: the session claimed at upgrade, or why not. */
    private readonly resume?: ResumeOutcome,
  ) {
    this.claims = claims;
    this.id = newSessionId();
    this.user = claims.user;
    if (resume?.resumed === true) {
      this.session = resume.claim.session;
      this.device = resume.claim.device;
      this.claim = resume.claim;
      this.seenLive = new Set();
    } else {
      this.session = newSessionId();
      // No device_id in the token: a random id per connection (SPEC §2).
      this.device = claims.device ?? `anon-${randomId(6)}`;
    }
  }

  get senderJson(): string {
    return (this.sender ??= encode.sender(this.user, this.device));
  }

  /** A child logger, made on first use: most connections never log, and each child costs memory. */
  private get log(): Logger {
    return (this.logger ??= this.deps.logger.child({ session: this.id, user: this.user, device: this.device }));
  }

  open(): void {
    const { metrics, router } = this.deps;
    this.deps.sessions.add(this);
    // A ghost of this session still going away on this node is superseded here: reclaims come to the resumed connection.
    this.deps.serving.set(this.session, this);
    metrics.activeConnections.inc();
    this.armExpiry();
    // The welcome waits for the cluster registration: once a client holds it, peers can reach it
    // and a newer connection of the same device wins, on every node. Frames that arrive earlier
    // are handled meanwhile (the local index is updated synchronously).
    let attached: MaybePromise<void>;
    try {
      attached = router.attach(this);
    } catch (error) {
      attached = Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    const resume = this.resume;
    if (resume?.resumed === true) {
      metrics.resumes.labels('resumed').inc();
      const back = (): void => void this.comeBack(resume).catch((error: unknown) => this.log.error({ err: error }, 'resume failed'));
      return whenReady(withinClusterWait(attached, 'registration'), back, (error: unknown) => {
        this.log.warn({ err: error }, 'could not register the connection cluster-wide');
        back();
      });
    }
    if (resume !== undefined) metrics.resumes.labels(resume.reason).inc();
    this.openInStore();
    // Bounded: a registration that waits for a Redis gone mid-handshake is finished by the store
    // when Redis returns; the client is welcomed meanwhile (as when it connects during an outage).
    whenReady(
      withinClusterWait(attached, 'registration'),
      () => this.welcome(resume?.reason),
      (error: unknown) => {
        // Local delivery works regardless; cross-node routing comes back when the bus does.
        this.log.warn({ err: error }, 'could not register the connection cluster-wide');
        this.welcome(resume?.reason);
      },
    );
  }

  /** A new session in the replay store; the welcome does not wait for it (a resume in the first moment may hear `expired`). */
  private openInStore(): void {
    if (this.deps.config.RESUME_WINDOW_S <= 0) return;
    this.claim = this.deps.resumeStore.open(this.session, this.user, this.device).catch((error: unknown) => {
      this.log.warn({ err: error }, 'could not open the session for resume; it will not be resumable');
      return undefined;
    });
  }

  /**
   * Completes a resume: the rooms and watches again, then `back` (what arrived while they were
   * being restored), then the welcome and the replay, each message once.
   */
  private async comeBack(resume: Extract<ResumeOutcome, { resumed: true }>): Promise<void> {
    const { router, resumeStore } = this.deps;
    const rooms = resume.state.rooms.filter((room) => roomAllowed(this.claims.rooms, room));
    const joined = await Promise.allSettled(rooms.map((room) => router.rooms.join(this, room)));
    const watched = resume.state.watches.length === 0 ? undefined : await router.watches.watch(this, resume.state.watches).catch(() => undefined);
    for (const failed of joined.filter((r) => r.status === 'rejected')) this.log.warn({ err: failed.reason }, 'could not rejoin a room on resume');
    let messages = resume.messages;
    try {
      const back = await resumeStore.back(resume.claim);
      if (!back.back && back.reason === 'taken') return this.close(CLOSE.replaced);
      if (!back.back) {
        // Overflowed meanwhile: the session is gone; this connection goes on as a new one.
        this.deps.metrics.resumes.labels('overflow').inc();
        this.claim = undefined;
        return this.welcome('overflow', []);
      }
      messages = messages.concat(back.messages);
    } catch (error) {
      this.log.warn({ err: error }, 'could not complete the resume in the store; replaying what it handed over');
    }
    const seen = this.seenLive ?? new Set<string>();
    this.seenLive = undefined;
    const replay = framesToReplay(messages, seen);
    // Closed while coming back: the replay is kept for the next resume, before what the ghost keeps.
    if (this.ghost !== undefined) return this.ghost.keepFirst(replay);
    this.deps.metrics.replayedMessages.inc(replay.length);
    this.welcome(undefined, replay);
    for (const [user, status] of Object.entries(watched ?? {})) this.send(encode.presenceChange(user, status), 'presence');
  }

  /**
   * Sends the welcome, then (after a resume) the replayed frames, then what arrived meanwhile.
   * `refused`: why a resume asked for was refused; `replay` undefined: a new session.
   */
  private welcome(refused?: string, replay?: readonly string[]): void {
    if (this.closed) return;
    const { config } = this.deps;
    const early = this.early;
    this.early = undefined;
    this.welcomed = true;
    this.write(
      encode.welcome({
        user: this.user,
        device: this.device,
        session: this.session,
        node: config.nodeId,
        heartbeatMs: Math.min(30_000, (config.IDLE_TIMEOUT_S * 1000) / 2),
        resumed: replay !== undefined && refused === undefined,
        ...(refused === undefined ? {} : { reason: refused }),
      }),
      'welcome',
    );
    for (const frame of replay ?? []) this.write(frame, REPLAYED);
    for (const [frame, type] of early ?? []) this.write(frame, type);
  }

  onMessage(data: ArrayBuffer, isBinary: boolean): void {
    // Decode now: uWS owns `data` only for the duration of this call.
    const decoded = isBinary ? BINARY_REJECTED : decodeClientFrame(utf8.decode(data));
    this.deps.metrics.countReceived(decoded.ok ? decoded.frame.type : 'invalid');
    const decision = this.deps.limiter.consume(this.user);
    if (this.backlog === undefined && !(decision instanceof Promise)) return this.decided(decoded, decision);
    const size = data.byteLength;
    const { config, metrics } = this.deps;
    if (this.backlogBytes + size > config.MAX_BUFFERED_BYTES) {
      metrics.queueOverflows.labels('frames_waiting').inc();
      return this.rateLimited(decoded.ok ? decoded.frame.id : decoded.error.id, config.RATE_LIMIT_DURATION_S * 1000);
    }
    this.backlogBytes += size;
    const queued: Promise<void> = (this.backlog ?? Promise.resolve())
      .then(() => decision)
      .then((d) => {
        this.backlogBytes -= size;
        this.decided(decoded, d);
      })
      .catch((error: unknown) => this.log.error({ err: error }, 'frame handling failed'))
      .finally(() => {
        if (this.backlog === queued) this.backlog = undefined;
      });
    this.backlog = queued;
  }

  private decided(decoded: DecodeResult, decision: RateDecision): void {
    if (this.closed || this.closing) return;
    if (!decision.allowed) return this.rateLimited(decoded.ok ? decoded.frame.id : decoded.error.id, decision.retryAfterMs);
    if (!decoded.ok) return this.sendError(decoded.error.code, decoded.error.message, decoded.error.id);
    // A bug in handling one frame answers that frame with an error; it must not reach uWS's
    // callback (an exception there would take the process down with every connection).
    try {
      this.handle(decoded.frame);
    } catch (error) {
      this.fail(error, decoded.frame.id);
    }
  }

  onClose(code: number): void {
    if (this.closed) return;
    this.closed = true;
    const { sessions, limits, expiries } = this.deps;
    sessions.delete(this);
    limits.release(this.ipKey);
    if (this.expiryBucket !== undefined) expiries.remove(this, this.expiryBucket);
    this.deps.metrics.activeConnections.dec();
    this.deps.metrics.connectionDuration.observe((performance.now() - this.openedAt) / 1000);
    const server = this.closedWith;
    // A client that never got its welcome cannot know its session: nothing to resume.
    const known = this.welcomed || this.resume?.resumed === true;
    const goesAway = known && this.claim !== undefined && code !== CLOSE.normal.code && (server === undefined || !ENDS_SESSION.has(server));
    if (goesAway) return this.goAway();
    this.endInStore();
    this.detach();
  }

  private detach(): void {
    if (this.deps.serving.get(this.session) === this) this.deps.serving.delete(this.session);
    void this.deps.router.detach(this);
  }

  /**
   * The store took this session back after the node's lease lapsed (resume-store.ts, Reclaim): what
   * was kept for it meanwhile is sent now (kept again when it is going away). Lost: another
   * connection resumed it meanwhile, and this one ends.
   */
  reclaimed(result: ReclaimResult): void {
    this.deps.metrics.reclaims.labels(result.reclaimed ? 'reclaimed' : 'lost').inc();
    if (!result.reclaimed) {
      this.claim = undefined;
      return this.close(CLOSE.replaced);
    }
    if (this.held !== undefined) return void this.deps.metrics.replayedMessages.inc(this.held.reclaim(result.messages));
    const frames = framesToReplay(result.messages, this.seenLive ?? new Set());
    if (this.ghost !== undefined) return this.ghost.keepFirst(frames);
    this.deps.metrics.replayedMessages.inc(frames.length);
    for (const frame of frames) this.send(frame, REPLAYED);
  }

  /** Holds what reaches the session until the node's standing is settled (held-frames.ts). */
  private hold(frame: string, type: string, id: string | undefined, standing: Standing): void {
    this.held = new HeldFrames();
    this.held.hold(frame, type, id);
    void standing.settled().then(() => this.releaseHeld());
  }

  /** Sends what was held (or keeps it, when the session is going away meanwhile). */
  private releaseHeld(): void {
    const held = this.held;
    this.held = undefined;
    for (const [frame, type, id] of held?.drain(REPLAYED) ?? []) this.deliver(frame, type, id);
  }

  /**
   * Records the rooms and watches in the store, so that a resume after this node died (kill -9:
   * nobody sends the session away with its state) restores them, and room traffic is kept for the
   * session once it is released. One write at a time; the last one writes the latest state.
   */
  private saveState(): void {
    if (this.claim === undefined || this.ghost !== undefined) return;
    if (this.stateWrite !== 0) return void (this.stateWrite = 2);
    this.stateWrite = 1;
    const { resumeStore, router } = this.deps;
    void Promise.resolve(this.claim)
      .then(async (claim) => {
        // Going away writes the state itself (a save after that is fenced: the session is away).
        while (claim !== undefined && this.ghost === undefined && this.stateWrite !== 0) {
          this.stateWrite = 1;
          await resumeStore.save(claim, router.stateOf(this));
          if (this.stateWrite === 1) this.stateWrite = 0;
        }
      })
      .catch((error: unknown) => this.log.warn({ err: error }, 'could not save the rooms and watches for resume; they are saved when the session goes away'))
      .finally(() => (this.stateWrite = 0));
  }

  /** The session ends for good: nothing of it is kept for a resume. */
  private endInStore(): void {
    const claim = this.claim;
    this.claim = undefined;
    if (claim === undefined) return;
    void Promise.resolve(claim)
      .then((held) => (held === undefined ? undefined : this.deps.resumeStore.end(held)))
      .catch((error: unknown) => this.log.warn({ err: error }, 'could not end the session in the store; it expires with its window'));
  }

  /** See the top of the file: the session goes away, and nothing that reached it is lost. */
  private goAway(): void {
    const { router, resumeStore, keeper } = this.deps;
    const ghost = (this.ghost = new Ghost(keeper, this.session, this.log));
    // Still routed to (what reaches it is kept), but no longer registered anywhere.
    router.leaving(this);
    // What the socket never wrote: frames before the welcome, and a slow consumer's last ones; then what was held.
    for (const [frame, , id] of this.early ?? []) ghost.keep(frame, id);
    for (const frame of this.conn.unsent?.() ?? []) ghost.keep(frame, undefined);
    this.early = undefined;
    this.releaseHeld();
    const claimed = this.claim;
    router.hold(
      (async () => {
        try {
          const claim = await claimed;
          if (claim !== undefined && !(await resumeStore.away(claim, router.stateOf(this)))) this.log.debug('the session was taken over before it went away');
        } catch (error) {
          this.log.warn({ err: error }, 'could not send the session away in the store');
        }
        ghost.flush();
        // Bounded: during a Redis outage the subscriber holds its queue (routing/deadline.ts), and
        // shutdown must not wait for it; what arrives later reaches the senders' keepers.
        await Promise.resolve(withinClusterWait(router.quiesce(this), 'unsubscribe')).catch(() => undefined);
        // Shutdown closes the store's connection after this: every append must have landed.
        await ghost.settled();
      })()
        .catch((error: unknown) => this.log.warn({ err: error }, 'going away failed'))
        .finally(() => this.detach()),
    );
  }

  // ── Recipient ───────────────────────────────────────────────────────────

  deliver(frame: string, type: string, id?: string): void {
    // Presence changes are not replayed: a resume tells the watched users' states afresh.
    if (this.ghost !== undefined) return type === 'presence' ? undefined : this.ghost.keep(frame, id);
    if (id !== undefined) this.seenLive?.add(id);
    if (this.held !== undefined) return this.held.hold(frame, type, id);
    // Only a session that can be released needs to wait: with resume off nothing is kept for it.
    const standing = this.claim === undefined ? undefined : this.deps.resumeStore.standing;
    if (standing?.inQuestion === true) return this.hold(frame, type, id, standing);
    this.send(frame, type, id);
  }

  /** Answers a direct signal: an ack when it carried an id, an error when it reached no one. */
  relayed(outcome: DirectOutcome, id: string | undefined, to: string): void {
    if (outcome === 'unavailable') this.sendError('unavailable', 'the cluster bus is down; the message was not delivered', id);
    else if (id === undefined) return;
    else if (outcome === 'delivered') this.send(encode.ack(id), 'ack');
    else if (outcome === 'queued') this.send(encode.ack(id, true), 'ack');
    else this.sendError('peer_offline', `no device of "${to}" is connected`, id);
  }

  kick(close: typeof CLOSE.replaced): void {
    audit(this.log, 'takeover', { code: close.code });
    this.close(close);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Called by the expiry wheel: the token expired without a refresh. */
  expire(): void {
    this.expiryBucket = undefined;
    this.close(CLOSE.token_expired);
  }

  notifyDraining(reconnectAfterMs: number): void {
    this.send(encode.draining(reconnectAfterMs), 'draining');
  }

  /** Server-initiated close (drain, takeover, expiry, abuse). Frames still queued are not handled: a fenced connection sends nothing more. */
  close(close: Close): void {
    if (this.closed || this.closing) return;
    this.closing = true;
    this.closedWith = close.code;
    this.conn.close(close);
  }

  // ── frames ──────────────────────────────────────────────────────────────

  private handle(frame: ClientFrame): void {
    switch (frame.type) {
      case 'offer':
      case 'answer':
      case 'candidate':
      case 'bye':
      case 'message':
        // The router keeps `id` and `to` until the bus answers, never the frame: its payload slices
        // the client's whole text. (A closure here would: V8 keeps one context per function for
        // every variable any of its closures captures, and the other cases capture `frame`. That
        // was over half of what survived young-generation GCs on a busy sending node, bench W2.)
        return this.deps.router.sendDirect(this, frame.type, frame.to, frame.device, frame.payloadJson, frame.id);
      case 'subscribe':
        return this.subscribe(frame.room, frame.id);
      case 'unsubscribe':
        this.deps.router.rooms.leave(this, frame.room).then(
          () => {
            this.saveState();
            this.send(encode.unsubscribed(frame.room, frame.id), 'unsubscribed');
          },
          (error: unknown) => this.fail(error, frame.id),
        );
        return;
      case 'publish':
        return this.publish(frame.room, frame.payloadJson, frame.id);
      case 'presence':
        this.deps.router.watches.status(frame.users).then(
          (users) => this.send(encode.presenceReply(users, frame.id), 'presence'),
          (error: unknown) => this.fail(error, frame.id),
        );
        return;
      case 'watch':
        return this.watch(frame.users, frame.id);
      case 'unwatch':
        this.deps.router.watches.unwatch(this, frame.users);
        this.saveState();
        return this.send(encode.unwatched(frame.users, frame.id), 'unwatched');
      case 'ping':
        return this.send(encode.pong(Date.now(), frame.id), 'pong');
      case 'refresh':
        return this.refresh(frame.token, frame.id);
    }
  }

  /** A method of its own for the reason given in `handle` for signals: the callbacks must not hold the frame. */
  private publish(room: string, payloadJson: string, id: string | undefined): void {
    if (!this.deps.router.rooms.isMember(this, room)) return this.sendError('not_subscribed', `not a member of room "${room}"; subscribe first`, id);
    whenReady(
      this.deps.router.rooms.publish(this, room, payloadJson),
      (ok) => {
        if (!ok) this.sendError('unavailable', 'the cluster bus is down; the message did not reach other nodes', id);
        else if (id !== undefined) this.send(encode.ack(id), 'ack');
      },
      (error: unknown) => this.fail(error, id),
    );
  }

  private subscribe(room: string, id: string | undefined): void {
    const { config } = this.deps;
    const { rooms } = this.deps.router;
    if (!roomAllowed(this.claims.rooms, room)) return this.sendError('forbidden', `the token does not allow room "${room}"`, id);
    if (!rooms.isMember(this, room) && rooms.count(this) >= config.MAX_ROOMS_PER_CONNECTION)
      return this.sendError('limit_exceeded', `at most ${config.MAX_ROOMS_PER_CONNECTION} rooms per connection`, id);
    rooms.join(this, room).then(
      (members) => {
        this.saveState();
        this.send(encode.subscribed(room, members, id), 'subscribed');
      },
      (error: unknown) => this.fail(error, id),
    );
  }

  private watch(users: string[], id: string | undefined): void {
    const { config } = this.deps;
    const { watches } = this.deps.router;
    const fresh = users.filter((u) => !watches.isWatching(this, u)).length;
    if (watches.count(this) + fresh > config.MAX_WATCHED_USERS)
      return this.sendError('limit_exceeded', `at most ${config.MAX_WATCHED_USERS} watched users per connection`, id);
    watches.watch(this, users).then(
      (states) => {
        this.saveState();
        this.send(encode.watching(states, id), 'watching');
      },
      (error: unknown) => this.fail(error, id),
    );
  }

  private refresh(token: string, id: string | undefined): void {
    whenReady(
      this.deps.verifier.verify(token),
      (result) => {
        if (this.closed) return;
        if (!result.ok || result.claims.user !== this.user) {
          audit(this.log, 'auth_failed', { reason: result.ok ? 'refresh_other_user' : result.reason, phase: 'refresh' });
          return this.sendError('token_invalid', result.ok ? 'the token is for another user' : `refresh rejected: ${result.reason}`, id);
        }
        this.claims = result.claims;
        this.armExpiry();
        this.send(encode.refreshed(result.claims.exp ?? 0, id), 'refreshed');
      },
      (error: unknown) => this.fail(error, id),
    );
  }

  private rateLimited(id: string | undefined, retryAfterMs: number): void {
    const { config, metrics } = this.deps;
    metrics.rateLimitExceeded.inc();
    const now = Date.now();
    if (now >= this.strikeWindowEnd) {
      this.strikes = 0;
      this.strikeWindowEnd = now + retryAfterMs;
    }
    if (++this.strikes > config.RATE_LIMIT_STRIKES) {
      audit(this.log, 'rate_limit_close', { strikes: this.strikes });
      return this.close(CLOSE.rate_limited);
    }
    this.sendError('rate_limited', `over ${config.RATE_LIMIT_POINTS} frames per ${config.RATE_LIMIT_DURATION_S}s`, id, { retry_after_ms: retryAfterMs });
  }

  // ── helpers ─────────────────────────────────────────────────────────────

  /** Closes with 4001 (via `expire`) when the token expires without a refresh. */
  private armExpiry(): void {
    const { expiries } = this.deps;
    if (this.expiryBucket !== undefined) expiries.remove(this, this.expiryBucket);
    const exp = this.claims.exp;
    this.expiryBucket = exp === undefined ? undefined : expiries.add(this, exp * 1000);
  }

  private fail(error: unknown, id: string | undefined): void {
    if (error instanceof BusUnavailableError) return this.sendError('unavailable', 'the cluster bus is down; try again', id);
    this.log.error({ err: error }, 'frame handling failed');
    this.sendError('unavailable', 'internal error; try again', id);
  }

  /** Every error frame goes out here, so that signaling_errors_total counts each one by its code. */
  private sendError(code: ErrorCode, message: string, id: string | undefined, extra?: { retry_after_ms: number }): void {
    this.deps.metrics.countError(code);
    this.send(encode.error(code, message, id, extra), 'error');
  }

  /** Every frame goes out here; before the welcome, frames wait behind it (SPEC §3.1: the welcome comes first). */
  private send(frame: string, type: string, id?: string): void {
    if (this.welcomed) return this.write(frame, type);
    (this.early ??= []).push([frame, type, id]);
    this.earlyBytes += frame.length;
    if (this.earlyBytes > this.deps.config.MAX_BUFFERED_BYTES) {
      this.deps.metrics.queueOverflows.labels('early_frames').inc();
      this.deps.metrics.slowConsumerCloses.inc();
      // Kept (not dropped) when the session goes away: its resume replays them.
      this.close(CLOSE.slow_consumer);
    }
  }

  private write(frame: string, type: string): void {
    if (this.closed) return;
    this.conn.send(frame);
    if (type !== REPLAYED) this.deps.metrics.countSent(type);
  }
}
