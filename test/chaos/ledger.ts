// The chaos ledger: what happened to every numbered message the traffic
// generator sent, from the sender's side (its answer) and the recipient's
// (each delivery), and the verdict over all of them. Pure bookkeeping: no
// I/O, no timers, so it is unit tested on its own (ledger.test.ts).
//
// A message is sent by `from` to `to` with a per-sender sequence number; its
// id is `from/seq`. What the sender can learn about it:
//   ack          handed to the recipient's node
//   queued       the recipient is away but resumable: kept for replay
//   error:<code> peer_offline, unavailable, rate_limited, ...
//   cut          no answer, and the connection it was sent on closed within
//                the answer bound: the answer went down with it (in doubt)
//   unanswered   no answer, and its connection stayed up for at least the
//                answer bound after it was sent: a silent drop
// What the recipient sees: deliveries, each checked against the highest
// sequence number already delivered from that sender (per-pair order).

export type Answer = 'ack' | 'queued' | `error:${string}`;

interface Entry {
  readonly from: string;
  readonly to: string;
  readonly seq: number;
  readonly sentAt: number;
  answer: Answer | undefined;
  answeredAt: number;
  /** The connection the message was sent on closed before an answer came. */
  cut: boolean;
  deliveries: number;
}

export interface Figures {
  sent: number;
  /** Answered `ack` (handed to the recipient's node). */
  acked: number;
  /** Answered `ack` with `queued: true` (kept for the recipient's resume). */
  queued: number;
  /** Distinct messages delivered at least once. */
  delivered: number;
  /** Deliveries beyond the first of a message. */
  duplicated: number;
  /** First deliveries of a message older than one already delivered from the same sender. */
  reordered: number;
  /** Acknowledged (ack or queued) and never delivered. */
  lost: number;
  /** Of `lost`, those acknowledged `queued`. */
  lostQueued: number;
  /**
   * Of `lost`, those acked `ack` (handed to the recipient's node) within a second of a node being
   * killed (`fault`): in flight in the dead process, which no resume can bring back.
   */
  lostInKilledNode: number;
  /** Of `peer_offline`, those answered while a killed node was not yet detected (`fault`'s window). */
  peerOfflineUndetected: number;
  unavailable: number;
  peer_offline: number;
  rate_limited: number;
  /** Other error codes, `code=count` pairs. */
  otherErrors: string;
  /** Answered with an error and delivered all the same (a wrong answer). */
  errorButDelivered: number;
  /** No answer, on a connection that stayed open: silent drops. */
  unanswered: number;
  /** No answer because the connection closed first (in doubt). */
  cut: number;
  /** Of `cut`, delivered all the same. */
  cutDelivered: number;
  /** Answers that came later than the answer bound after the send (counted in their kind all the same). */
  answeredLate: number;
  /** The longest time from a send to its answer. */
  maxAnswerMs: number;
  /** Deliveries of a message the ledger never sent (or from the wrong sender). */
  strayDeliveries: number;
  /** Answers to an id the ledger never sent, or a second answer. */
  strayAnswers: number;
}

const key = (from: string, seq: number) => `${from}/${seq}`;

export class Ledger {
  /** @param answerBoundMs how long a sender waits for an answer before the message counts as silently dropped. */
  constructor(readonly answerBoundMs = 10_000) {}

  private readonly entries = new Map<string, Entry>();
  /** Highest sequence number delivered, per `from>to`. */
  private readonly highest = new Map<string, number>();
  private reordered = 0;
  private duplicated = 0;
  private strayDeliveries = 0;
  private strayAnswers = 0;
  /** A node killed at `at`, detected within `windowMs` (PRESENCE_TTL_MS). */
  private killed: { at: number; windowMs: number } | undefined;

  /** A node is killed now (kill -9): what it held in flight and what its detection window answers are counted apart. */
  fault(at: number, windowMs: number): void {
    this.killed = { at, windowMs };
  }

  /** Acked as handed to a node within a second of its kill, never delivered. */
  private inKilledNode(e: Entry): boolean {
    const k = this.killed;
    return k !== undefined && e.answer === 'ack' && e.deliveries === 0 && Math.abs(e.answeredAt - k.at) <= 1000;
  }

  sent(from: string, to: string, seq: number, at: number): void {
    this.entries.set(key(from, seq), { from, to, seq, sentAt: at, answer: undefined, answeredAt: -1, cut: false, deliveries: 0 });
  }

  answered(from: string, seq: number, answer: Answer, at: number): void {
    const entry = this.entries.get(key(from, seq));
    if (entry === undefined || entry.answer !== undefined) {
      this.strayAnswers++;
      return;
    }
    entry.answer = answer;
    entry.answeredAt = at;
  }

  /**
   * The connection `from` sent `seqs` on closed at `at` before their answers came. Those sent
   * longer than the answer bound before the close had been left unanswered: they stay silent drops.
   */
  cutOff(from: string, seqs: Iterable<number>, at: number): void {
    for (const seq of seqs) {
      const entry = this.entries.get(key(from, seq));
      if (entry !== undefined && entry.answer === undefined && at - entry.sentAt <= this.answerBoundMs) entry.cut = true;
    }
  }

  delivered(from: string, to: string, seq: number): void {
    const entry = this.entries.get(key(from, seq));
    if (entry === undefined || entry.to !== to) {
      this.strayDeliveries++;
      return;
    }
    entry.deliveries++;
    if (entry.deliveries > 1) {
      this.duplicated++;
      return;
    }
    const pair = `${from}>${to}`;
    const highest = this.highest.get(pair) ?? 0;
    if (seq < highest) this.reordered++;
    else this.highest.set(pair, seq);
  }

  /** What settling still waits for: answers on live connections, and deliveries of acknowledged messages. */
  outstanding(): { unanswered: number; undelivered: number } {
    let unanswered = 0;
    let undelivered = 0;
    for (const e of this.entries.values()) {
      if (e.answer === undefined && !e.cut) unanswered++;
      if ((e.answer === 'ack' || e.answer === 'queued') && e.deliveries === 0 && !this.inKilledNode(e)) undelivered++;
    }
    return { unanswered, undelivered };
  }

  /** A few acknowledged but undelivered messages, for a failure message. */
  sampleLost(limit = 10): string[] {
    const out: string[] = [];
    for (const e of this.entries.values()) {
      if (out.length >= limit) break;
      if ((e.answer === 'ack' || e.answer === 'queued') && e.deliveries === 0) out.push(`${key(e.from, e.seq)}→${e.to} (${e.answer})`);
    }
    return out;
  }

  verdict(): Figures {
    const f: Figures = {
      sent: this.entries.size,
      acked: 0,
      queued: 0,
      delivered: 0,
      duplicated: this.duplicated,
      reordered: this.reordered,
      lost: 0,
      lostQueued: 0,
      lostInKilledNode: 0,
      peerOfflineUndetected: 0,
      unavailable: 0,
      peer_offline: 0,
      rate_limited: 0,
      otherErrors: '',
      errorButDelivered: 0,
      unanswered: 0,
      cut: 0,
      cutDelivered: 0,
      answeredLate: 0,
      maxAnswerMs: 0,
      strayDeliveries: this.strayDeliveries,
      strayAnswers: this.strayAnswers,
    };
    const other = new Map<string, number>();
    for (const e of this.entries.values()) {
      const delivered = e.deliveries > 0;
      if (delivered) f.delivered++;
      if (e.answer !== undefined) {
        const took = e.answeredAt - e.sentAt;
        if (took > this.answerBoundMs) f.answeredLate++;
        f.maxAnswerMs = Math.max(f.maxAnswerMs, Math.round(took));
      }
      if (e.answer === 'ack' || e.answer === 'queued') {
        if (e.answer === 'ack') f.acked++;
        else f.queued++;
        if (!delivered) {
          f.lost++;
          if (e.answer === 'queued') f.lostQueued++;
          if (this.inKilledNode(e)) f.lostInKilledNode++;
        }
      } else if (e.answer !== undefined) {
        const code = e.answer.slice('error:'.length);
        if (code === 'unavailable' || code === 'peer_offline' || code === 'rate_limited') f[code]++;
        const k = this.killed;
        if (code === 'peer_offline' && k !== undefined && e.answeredAt >= k.at && e.answeredAt <= k.at + k.windowMs) f.peerOfflineUndetected++;
        else other.set(code, (other.get(code) ?? 0) + 1);
        if (delivered) f.errorButDelivered++;
      } else if (e.cut) {
        f.cut++;
        if (delivered) f.cutDelivered++;
      } else f.unanswered++;
    }
    f.otherErrors = [...other].map(([code, n]) => `${code}=${n}`).join(' ');
    return f;
  }
}
