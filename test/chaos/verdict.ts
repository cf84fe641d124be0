// What issue 15 demands of a scenario's result, as a list of broken promises
// (empty when it held). chaos.test.ts and run.ts judge by the same list.
import type { ScenarioName, ScenarioResult } from './scenarios';

export interface Expectations {
  /** Clients lost their connection: each reconnect must resume, nobody is peer_offline meanwhile (SPEC §3.9). */
  resume: boolean;
  /**
   * A node is killed with -9: what it had been handed and not yet written dies with it (an ack
   * means "handed to the recipient's node"), and until its lease expires its users' messages are
   * answered peer_offline. Both are counted (lostInKilledNode, peerOfflineUndetected) and reported,
   * not failed; any other loss or peer_offline fails.
   */
  killed?: boolean;
  /** Watchers must see the killed node's users offline within this many ms. */
  offlineWithinMs?: number;
}

export const EXPECTATIONS: Record<ScenarioName, Expectations> = {
  baseline: { resume: false },
  rolling: { resume: true },
  kill: { resume: true, killed: true },
  redis: { resume: false },
  sentinel: { resume: false },
};

export function violations(result: ScenarioResult, expect: Expectations): string[] {
  const f = result.figures;
  const c = result.clients;
  const out: string[] = [];
  const zero = (what: string, n: number) => n !== 0 && out.push(`${what}: ${n}`);
  if (f.sent === 0) out.push('no traffic was sent');
  zero('lost (acknowledged, never delivered)', f.lost - (expect.killed === true ? f.lostInKilledNode : 0));
  zero('duplicated', f.duplicated);
  zero('reordered', f.reordered);
  zero('unanswered (silent drops)', f.unanswered);
  zero('stray deliveries', f.strayDeliveries);
  zero('stray answers', f.strayAnswers);
  if (result.settleMs === undefined) out.push('the settle did not finish within its bound');
  if (expect.resume) {
    if (c.reconnects === 0) out.push('the fault made no client reconnect');
    if (c.resumed === 0) out.push('no reconnect was resumed');
    if (c.refused.size > 0) out.push(`resume refused: ${[...c.refused].map(([r, n]) => `${r}=${n}`).join(' ')}`);
    zero('resumed with another session id', c.resumedOtherSession);
    zero('peer_offline while every user was online or resumable', f.peer_offline - (expect.killed === true ? f.peerOfflineUndetected : 0));
  }
  if (expect.offlineWithinMs !== undefined) {
    if (result.offlineSeenMs === undefined) out.push("watchers never saw the killed node's users offline");
    else if (result.offlineSeenMs > expect.offlineWithinMs) out.push(`offline seen after ${Math.round(result.offlineSeenMs)} ms, bound ${expect.offlineWithinMs} ms`);
  }
  return out;
}
