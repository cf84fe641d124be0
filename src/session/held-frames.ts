// What reaches a session while its node's standing is in question
// (presence/lease-keeper.ts, Standing): the node's lease may have lapsed
// unnoticed, and a peer may have released the session, so that messages for it
// were kept in the store instead of (or as well as) delivered. What arrives
// meanwhile waits here, in arrival order, until the standing is settled. A
// reclaim (resume/resume-store.ts, Reclaim) then hands back what was kept: what
// arrived too goes in its arrival place (a room message is kept for a released
// member and delivered to its node alike); the rest was kept while nothing
// reached the node, before anything that waited here, and goes first.
import { keptOnce } from '../resume/kept-frames';
import type { BufferedMessage } from '../resume/resume-store';

export type HeldFrame = [frame: string, type: string, id: string | undefined];

export class HeldFrames {
  private readonly arrived: HeldFrame[] = [];
  private readonly reclaimed: [frame: string, id: string | undefined][] = [];
  private readonly reclaimedIds = new Set<string>();

  hold(frame: string, type: string, id: string | undefined): void {
    this.arrived.push([frame, type, id]);
  }

  /** What a reclaim handed back, each message once; returns how many frames it adds. */
  reclaim(messages: readonly BufferedMessage[]): number {
    const kept = keptOnce(messages, this.reclaimedIds);
    for (const [id, frame] of kept) this.reclaimed.push([frame, id]);
    return kept.length;
  }

  /** Everything, in the order to send it (see the top); reclaimed frames carry `reclaimedType`. */
  *drain(reclaimedType: string): Generator<HeldFrame> {
    const arrivedIds = new Set(this.arrived.map(([, , id]) => id));
    for (const [frame, id] of this.reclaimed) if (id === undefined || !arrivedIds.has(id)) yield [frame, reclaimedType, id];
    yield* this.arrived;
  }
}
