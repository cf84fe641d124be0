// Keeps a message for the sessions away in their resume window that it was
// addressed to (SPEC §3.9), when no connected device got it: the sender's
// side of resume. The session's own node keeps what reached it while the
// session was going away (session/client-session.ts); between the two, every
// message reaches a resumed session once (kept-frames.ts drops the doubles).
//
// Order: a message is looked up (which sessions keep it?) as its publish is
// answered, so lookups go out in the order of the messages; the appends then go
// out in that same order (one connection keeps it from there), whichever
// lookup's answer took fewer steps to come back (`inTurn`): a room message sent
// after direct ones is never kept ahead of them.
import type { Logger } from '../log/logger';
import type { Metrics } from '../metrics/metrics';
import { chainMaybe, type MaybePromise } from '../util/maybe-promise';
import { keptFrame } from './kept-frames';
import type { AppendResult, ResumeStore } from './resume-store';

/** What keeping a message for a user's away sessions did (`forUser`). */
export type Kept = 'queued' | 'live' | 'none';

function outcome(results: readonly AppendResult[]): Kept {
  return results.includes('queued') ? 'queued' : results.includes('live') ? 'live' : 'none';
}

export class AwayKeeper {
  constructor(
    private readonly store: ResumeStore,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    /** RESUME_WINDOW_S > 0: nothing is kept otherwise. */
    private readonly enabled: boolean,
  ) {}

  /** Lookups sent, and the next whose appends may go out; appends ready out of turn wait here. */
  private looked = 0;
  private turn = 0;
  private readonly waiting = new Map<number, () => unknown>();

  /**
   * Keeps a direct message or event for `user`'s away sessions (of `device` only, when named):
   * `queued` when one kept it; `live` when none did because one is connected again (it came back
   * after the message was published: publish it again); else `none`.
   */
  forUser(user: string, device: string | undefined, id: string, frame: string): MaybePromise<Kept> {
    if (!this.enabled) return 'none';
    return this.guard(this.inTurn(this.store.resumable(user, device), (sessions) => this.keepAll(sessions, id, frame)));
  }

  /** Keeps room traffic for the room's away members; nobody waits for it. */
  forRoom(room: string, id: string, frame: string): void {
    if (!this.enabled) return;
    void this.guard(this.inTurn(this.store.resumableInRoom(room), (sessions) => this.keepAll(sessions, id, frame)));
  }

  /** Runs `act` on the lookup's answer once every lookup sent before it has had its turn (see the top). */
  private inTurn<T>(lookup: MaybePromise<string[]>, act: (sessions: string[]) => MaybePromise<T>): MaybePromise<T> {
    if (!(lookup instanceof Promise)) return act(lookup); // one process: answered at once, in order
    const ticket = this.looked++;
    return lookup.then(
      (sessions) => this.whenTurn(ticket, () => act(sessions)),
      (error: unknown) =>
        this.whenTurn(ticket, (): never => {
          throw error;
        }),
    );
  }

  /** Runs `run` now when it is `ticket`'s turn (nearly always), else once the turns before it ran; then the turns after it. */
  private whenTurn<T>(ticket: number, run: () => MaybePromise<T>): MaybePromise<T> {
    if (ticket !== this.turn) return new Promise<T>((resolve, reject) => this.waiting.set(ticket, () => new Promise<T>((r) => r(run())).then(resolve, reject)));
    this.turn++;
    try {
      return run();
    } finally {
      for (let next = this.waiting.get(this.turn); next !== undefined; next = this.waiting.get(this.turn)) {
        this.waiting.delete(this.turn++);
        next();
      }
    }
  }

  /** Appends to one session, counting the outcome; what the caller does with 'live' is its business. */
  keep(session: string, id: string | undefined, frame: string): MaybePromise<AppendResult> {
    return chainMaybe(this.store.append(session, keptFrame(id, frame)), (result) => {
      if (result !== 'live') this.metrics.keptMessages.labels(result).inc();
      return result;
    });
  }

  private keepAll(sessions: readonly string[], id: string, frame: string): MaybePromise<Kept> {
    if (sessions.length === 0) return 'none';
    const results = sessions.map((session) => this.keep(session, id, frame));
    const pending = results.filter((r): r is Promise<AppendResult> => r instanceof Promise);
    if (pending.length === 0) return outcome(results as AppendResult[]);
    return Promise.all(results.map((r) => Promise.resolve(r))).then(outcome);
  }

  /** A store failure keeps nothing (the sender hears peer_offline, as without resume); logged once per message. */
  private guard(kept: MaybePromise<Kept>): MaybePromise<Kept> {
    if (!(kept instanceof Promise)) return kept;
    return kept.catch((error: unknown) => {
      this.logger.warn({ err: error }, 'could not keep a message for an away session');
      return 'none' as const;
    });
  }
}
