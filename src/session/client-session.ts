// What a client asks on /ws (SPEC §3): reads and answers its frames. The
// session's life across connections is in resumable-session.ts, the sending and
// closing of this connection in connected-session.ts; everything the protocol
// says happens here and in the router.
//
// Frame order: each frame is decoded at once and handled as soon as its
// rate-limit decision is known — at once, nearly always. When a decision has to
// wait for the cluster store, that frame and every later one of this session
// wait in `backlog`, so frames are handled in the order they arrived. Frames
// waiting for a decision are bounded by MAX_BUFFERED_BYTES, like the send
// buffer: past it a frame is refused with `rate_limited` (the client sends
// faster than the cluster decides).
import { roomAllowed } from '../auth/claims';
import { CLOSE } from '../errors/codes';
import { audit } from '../log/audit';
import { decodeClientFrame, type ClientFrame, type DecodeResult } from '../protocol/app-codec';
import { encode } from '../protocol/server-frames';
import type { RateDecision } from '../ratelimit/rate-limiter';
import type { WsHandler } from '../transport/http-types';
import { whenReady } from '../util/maybe-promise';
import type { Expiring } from './expiry-wheel';
import { ResumableSession } from './resumable-session';

export type { SessionDeps } from './connected-session';

const utf8 = new TextDecoder('utf-8');
const BINARY_REJECTED: DecodeResult = { ok: false, error: { code: 'bad_message', message: 'binary frames are not accepted; send JSON text' } };

export class ClientSession extends ResumableSession implements WsHandler, Expiring {
  /** The expiry wheel bucket this session waits in; undefined when its token has no `exp`. */
  private expiryBucket: number | undefined = undefined;
  private strikes = 0;
  private strikeWindowEnd = 0;
  /** The last frame still waiting for its rate-limit decision; later frames queue behind it. */
  private backlog: Promise<void> | undefined = undefined;
  /** Bytes of client frames waiting in `backlog`. */
  private backlogBytes = 0;

  override open(): void {
    this.armExpiry();
    super.open();
  }

  override onClose(code: number): void {
    if (this.expiryBucket !== undefined) this.deps.expiries.remove(this, this.expiryBucket);
    this.expiryBucket = undefined;
    super.onClose(code);
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

  /** Called by the expiry wheel: the token expired without a refresh. */
  expire(): void {
    this.expiryBucket = undefined;
    this.close(CLOSE.token_expired);
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
}
