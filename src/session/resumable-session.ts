// A client session across its connections (SPEC §3.9, resume/resume-store.ts):
// registered when its connection opens, new or resumed; what reaches it; and,
// when its socket closes, whether it ends or goes away to be resumed. The
// welcome's `session` is the session's id in the replay store; `id` is this
// connection's own (routing, presence, kicks), so an old connection still going
// away and its successor never share one.
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
//   reclaimed: the node's lease lapsed while it lived and a peer released the session; the
//             store takes it back and what was kept meanwhile is sent (held-frames.ts).
//
// Its rooms and watches are saved in the store as they change (`saveState`):
// a node killed with -9 sends nobody away, and a resume then restores them.
import { roomAllowed } from '../auth/claims';
import { CLOSE } from '../errors/codes';
import type { Standing } from '../presence/lease-keeper';
import { encode } from '../protocol/server-frames';
import { framesToReplay } from '../resume/kept-frames';
import type { Claim, ReclaimResult } from '../resume/resume-store';
import { withinClusterWait } from '../routing/deadline';
import type { Recipient } from '../routing/router';
import { whenReady, type MaybePromise } from '../util/maybe-promise';
import { ConnectedSession, REPLAYED } from './connected-session';
import { Ghost } from './ghost';
import { HeldFrames } from './held-frames';
import type { ResumeOutcome } from './resume-claim';

/** Server closes after which the session ends rather than going away (nobody should resume it). */
const ENDS_SESSION: ReadonlySet<number> = new Set([CLOSE.replaced.code, CLOSE.rate_limited.code]);

export abstract class ResumableSession extends ConnectedSession implements Recipient {
  /** The session's hold in the replay store: a promise while `open` runs; undefined when resume is off or the store failed. */
  private claim: MaybePromise<Claim | undefined> = undefined;
  /** The rooms and watches being written to the store (`saveState`): 1 while a write runs, 2 when another must follow it. */
  private stateWrite: 0 | 1 | 2 = 0;
  /** While a resume is completing: ids of the messages that arrived live, which the replay skips. */
  private seenLive: Set<string> | undefined = undefined;
  /** Set when the socket closed and the session went away: what still reaches it is kept for its resume. */
  private ghost: Ghost | undefined = undefined;
  /** What arrived while the node's standing was in question (held-frames.ts). */
  private held: HeldFrames | undefined = undefined;

  open(): void {
    const { metrics, router } = this.deps;
    this.opened();
    // A ghost of this session still going away on this node is superseded here: reclaims come to the resumed connection.
    this.deps.serving.set(this.session, this);
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
      this.claim = resume.claim;
      this.seenLive = new Set();
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
    const opening: Promise<Claim | undefined> = this.deps.resumeStore.open(this.session, this.user, this.device).then(
      (claim) => {
        // The settled promise would stay with the session for its whole life (~100 B each); the claim
        // itself replaces it, unless the session moved on meanwhile (closed, lost its claim).
        if (this.claim === opening) this.claim = claim;
        return claim;
      },
      (error: unknown) => {
        this.log.warn({ err: error }, 'could not open the session for resume; it will not be resumable');
        if (this.claim === opening) this.claim = undefined;
        return undefined;
      },
    );
    this.claim = opening;
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

  onClose(code: number): void {
    if (!this.socketClosed()) return;
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
  protected saveState(): void {
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
}
