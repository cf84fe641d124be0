// Keeps a message for the sessions away in their resume window that it was
// addressed to (SPEC §3.9), when no connected device got it: the sender's
// side of resume. The session's own node keeps what reached it while the
// session was going away (session/client-session.ts); between the two, every
// message reaches a resumed session once (kept-frames.ts drops the doubles).
import type { Logger } from '../log/logger';
import type { Metrics } from '../metrics/metrics';
import { chainMaybe, type MaybePromise } from '../util/maybe-promise';
import { keptFrame } from './kept-frames';
import type { AppendResult, ResumeStore } from './resume-store';

export class AwayKeeper {
  constructor(
    private readonly store: ResumeStore,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    /** RESUME_WINDOW_S > 0: nothing is kept otherwise. */
    private readonly enabled: boolean,
  ) {}

  /** Keeps a direct message or event for `user`'s away sessions (of `device` only, when named); true when at least one kept it. */
  forUser(user: string, device: string | undefined, id: string, frame: string): MaybePromise<boolean> {
    if (!this.enabled) return false;
    return this.guard(chainMaybe(this.store.resumable(user, device), (sessions) => this.keepAll(sessions, id, frame)));
  }

  /** Keeps room traffic for the room's away members; nobody waits for it. */
  forRoom(room: string, id: string, frame: string): void {
    if (!this.enabled) return;
    void this.guard(chainMaybe(this.store.resumableInRoom(room), (sessions) => this.keepAll(sessions, id, frame)));
  }

  /** Appends to one session, counting the outcome; what the caller does with 'live' is its business. */
  keep(session: string, id: string | undefined, frame: string): MaybePromise<AppendResult> {
    return chainMaybe(this.store.append(session, keptFrame(id, frame)), (result) => {
      if (result !== 'live') this.metrics.keptMessages.labels(result).inc();
      return result;
    });
  }

  private keepAll(sessions: readonly string[], id: string, frame: string): MaybePromise<boolean> {
    if (sessions.length === 0) return false;
    const results = sessions.map((session) => this.keep(session, id, frame));
    const pending = results.filter((r): r is Promise<AppendResult> => r instanceof Promise);
    if (pending.length === 0) return results.includes('queued');
    return Promise.all(results.map((r) => Promise.resolve(r))).then((all) => all.includes('queued'));
  }

  /** A store failure keeps nothing (the sender hears peer_offline, as without resume); logged once per message. */
  private guard(kept: MaybePromise<boolean>): MaybePromise<boolean> {
    if (!(kept instanceof Promise)) return kept;
    return kept.catch((error: unknown) => {
      this.logger.warn({ err: error }, 'could not keep a message for an away session');
      return false;
    });
  }
}
