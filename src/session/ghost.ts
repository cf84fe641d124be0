// What keeps the messages of a closed session while it goes away for resume
// (client-session.ts, goAway): split from the session, which only decides
// when a session goes away and in which order its steps run.
import type { Logger } from '../log/logger';
import type { AwayKeeper } from '../resume/away-keeper';

/**
 * A closed session going away: keeps, in arrival order, what still reaches it. Until the store has
 * sent the session away the frames wait here (an append would answer `live`); from `flush` on, each
 * is appended at once (one connection to Redis keeps their order).
 */
export class Ghost {
  private waiting: [frame: string, id: string | undefined][] | undefined = [];
  /** Appends the store has not answered yet. */
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(
    private readonly keeper: AwayKeeper,
    private readonly session: string,
    private readonly log: Logger,
  ) {}

  keep(frame: string, id: string | undefined): void {
    if (this.waiting !== undefined) return void this.waiting.push([frame, id]);
    this.append(frame, id);
  }

  /** A resume's replay that never reached the client (closed while coming back): ahead of the rest, once more. */
  keepFirst(frames: readonly string[]): void {
    const first = frames.map((frame): [string, undefined] => [frame, undefined]);
    if (this.waiting !== undefined) this.waiting.unshift(...first);
    else for (const [frame] of first) this.append(frame, undefined);
  }

  flush(): void {
    const waiting = this.waiting ?? [];
    this.waiting = undefined;
    for (const [frame, id] of waiting) this.append(frame, id);
  }

  /** Resolves once every append made so far has been answered. */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
  }

  private append(frame: string, id: string | undefined): void {
    try {
      const kept = this.keeper.keep(this.session, id, frame);
      if (!(kept instanceof Promise)) return;
      const tracked: Promise<unknown> = kept
        .catch((error: unknown) => this.log.warn({ err: error }, 'could not keep a message for resume'))
        .finally(() => this.inFlight.delete(tracked));
      this.inFlight.add(tracked);
    } catch (error) {
      this.log.warn({ err: error }, 'could not keep a message for resume');
    }
  }
}
