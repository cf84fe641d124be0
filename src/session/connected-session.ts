// One client connection's side of a session (SPEC §3): who it is, what it
// sends — the welcome first; frames for it before the welcome wait behind it,
// bounded by MAX_BUFFERED_BYTES like the send buffer (past it the connection is
// closed with 4010, as a slow consumer) — its error frames, and how the server
// closes it. The transport only writes and closes.
//
// Three layers make a client session, each in its own file:
//   connected-session.ts   this connection: identity, sending, closing
//   resumable-session.ts   the session across connections: open, resume, go away, reclaim
//   client-session.ts      what the client asks: its frames, rate limits, token refresh
import type { Claims, TokenVerifier } from '../auth/claims';
import type { Config } from '../config/load';
import { CLOSE, type Close, type ErrorCode } from '../errors/codes';
import { audit } from '../log/audit';
import type { Logger } from '../log/logger';
import type { Metrics } from '../metrics/metrics';
import { encode } from '../protocol/server-frames';
import type { UserRateLimiter } from '../ratelimit/rate-limiter';
import type { AwayKeeper } from '../resume/away-keeper';
import type { ReclaimResult, ResumeStore } from '../resume/resume-store';
import { BusUnavailableError, type DirectOutcome, type Router } from '../routing/router';
import type { Connection } from '../transport/connection';
import { randomId } from '../util/random-id';
import type { Drainable } from './drain';
import type { Expiring, ExpiryWheel } from './expiry-wheel';
import type { ResumeOutcome } from './resume-claim';

export interface SessionDeps {
  config: Config;
  router: Router;
  limiter: UserRateLimiter;
  verifier: TokenVerifier;
  metrics: Metrics;
  logger: Logger;
  /** This node's open sessions (drain, health); a session is in it from open to close. */
  sessions: Set<Drainable>;
  /**
   * The sessions this node serves, by session id, from open until detached (going away
   * included): where the store's reclaims go (resume-store.ts, Reclaim).
   */
  serving: Map<string, { reclaimed(result: ReclaimResult): void }>;
  /** Gives back the connection slot admission granted (node and per-IP counts). */
  limits: { release(ipKey: string): void };
  /** Closes sessions whose token expired without a refresh (4001). */
  expiries: ExpiryWheel<Expiring>;
  /** Replay buffers (SPEC §3.9); unused when RESUME_WINDOW_S is 0. */
  resumeStore: ResumeStore;
  keeper: AwayKeeper;
}

export function newSessionId(): string {
  return randomId(16);
}

/** The type of a replayed frame: counted by signaling_replayed_messages_total, not by type (a kept frame's type is not stored). */
export const REPLAYED = '';

export abstract class ConnectedSession implements Drainable {
  /** This connection's id (routing, presence, kicks). */
  readonly id: string;
  /** The session's id in the replay store: the welcome's `session`, kept across resumes. */
  readonly session: string;
  readonly user: string;
  readonly device: string;
  /** The server's close code, when it closed the socket. */
  protected closedWith: number | undefined;
  protected closed = false;
  /** Set by a server-initiated close, before the transport reports the socket closed. */
  protected closing = false;
  protected welcomed = false;
  /** Frames for this session that arrived before its welcome was sent (made on first use), with their message ids. */
  protected early: [frame: string, type: string, id: string | undefined][] | undefined;
  private earlyBytes = 0;
  /** Made on first send: an idle connection does not carry it (bench W4). */
  private sender: string | undefined;
  private logger: Logger | undefined;
  private readonly openedAt = performance.now();

  constructor(
    protected readonly deps: SessionDeps,
    protected readonly conn: Connection,
    protected claims: Claims,
    /** The admission's per-IP key, given back on close. */
    private readonly ipKey: string,
    /** Asked for with `?resume=`: the session claimed at upgrade, or why not. */
    protected readonly resume?: ResumeOutcome,
  ) {
    this.id = newSessionId();
    this.user = claims.user;
    if (resume?.resumed === true) {
      this.session = resume.claim.session;
      this.device = resume.claim.device;
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
  protected get log(): Logger {
    return (this.logger ??= this.deps.logger.child({ session: this.id, user: this.user, device: this.device }));
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Counts the connection in: the node's open sessions, the gauge. */
  protected opened(): void {
    this.deps.sessions.add(this);
    this.deps.metrics.activeConnections.inc();
  }

  /** The socket closed: gives back what the connection held. False when it had already. */
  protected socketClosed(): boolean {
    if (this.closed) return false;
    this.closed = true;
    this.deps.sessions.delete(this);
    this.deps.limits.release(this.ipKey);
    this.deps.metrics.activeConnections.dec();
    this.deps.metrics.connectionDuration.observe((performance.now() - this.openedAt) / 1000);
    return true;
  }

  /**
   * Sends the welcome, then (after a resume) the replayed frames, then what arrived meanwhile.
   * `refused`: why a resume asked for was refused; `replay` undefined: a new session.
   */
  protected welcome(refused?: string, replay?: readonly string[]): void {
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

  protected fail(error: unknown, id: string | undefined): void {
    if (error instanceof BusUnavailableError) return this.sendError('unavailable', 'the cluster bus is down; try again', id);
    this.log.error({ err: error }, 'frame handling failed');
    this.sendError('unavailable', 'internal error; try again', id);
  }

  /** Every error frame goes out here, so that signaling_errors_total counts each one by its code. */
  protected sendError(code: ErrorCode, message: string, id: string | undefined, extra?: { retry_after_ms: number }): void {
    this.deps.metrics.countError(code);
    this.send(encode.error(code, message, id, extra), 'error');
  }

  /** Every frame goes out here; before the welcome, frames wait behind it (SPEC §3.1: the welcome comes first). */
  protected send(frame: string, type: string, id?: string): void {
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
