// Claiming a session for a reconnect with `?resume=<session>` (SPEC §3.9),
// decided while the upgrade waits, so that the socket opens as the session it
// continues (its id, its device) or as a new one told why not.
//
// A session whose old connection is still closing (its node has not yet sent
// it away: the client reconnected faster than the server saw the old socket
// go) answers `taken`; the claim is tried again for a while before the
// refusal stands. A session held by a node killed with -9 is `taken` until
// that node's lease expires (at most PRESENCE_TTL_MS); then the store
// releases it and the claim succeeds, so the wait covers that much.
import type { Claims } from '../auth/claims';
import type { ResumeRefusal, ResumeResult, ResumeStore } from '../resume/resume-store';

/** What the upgrade hands the session: a claimed session, or why the resume was refused. */
export type ResumeOutcome = Extract<ResumeResult, { resumed: true }> | { resumed: false; reason: ResumeRefusal | 'unavailable' };

/** How long a resume waits at least for the old connection of its session to be sent away. */
export const TAKEN_WAIT_MS = 2000;

/** The wait for a `taken` session: long enough for a dead holder's lease to expire. */
export function takenWaitMs(presenceTtlMs: number): number {
  return Math.max(TAKEN_WAIT_MS, presenceTtlMs);
}
const TAKEN_POLL_MS = 50;

export async function claimForResume(store: ResumeStore, session: string, claims: Claims, waitMs = TAKEN_WAIT_MS): Promise<ResumeOutcome> {
  const deadline = performance.now() + waitMs;
  let result: ResumeResult;
  try {
    for (;;) {
      result = await store.resume(session, claims.user);
      if (result.resumed || result.reason !== 'taken' || performance.now() >= deadline) break;
      await new Promise((resolve) => setTimeout(resolve, TAKEN_POLL_MS));
    }
  } catch (_storeDown) {
    return { resumed: false, reason: 'unavailable' };
  }
  // A token for another device of the user continues nobody's session: given back as it was.
  if (result.resumed && claims.device !== undefined && claims.device !== result.claim.device) {
    await store.away(result.claim).catch(() => undefined);
    return { resumed: false, reason: 'forbidden' };
  }
  return result;
}
