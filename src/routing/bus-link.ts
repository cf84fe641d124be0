// The router's side of the bus: the one handler that delivers other nodes'
// envelopes to this node's sessions, and publishing envelopes with the count
// of OTHER nodes that received them (what acks and peer_offline are made of).
// Split from router.ts, which decides who gets what; this file only moves it.
import { channels, type Bus, type PublishWaiter } from '../bus/bus';
import { CLOSE } from '../errors/codes';
import type { Logger } from '../log/logger';
import type { Metrics } from '../metrics/metrics';
import type { PresenceStatus } from '../protocol/server-frames';
import { decodeEnvelope, encodeEnvelope, type Envelope } from '../protocol/envelope';
import type { MaybePromise } from '../util/maybe-promise';
import type { LocalIndex, Recipient } from './local-index';
import { Subscriptions } from './subscriptions';

export interface BusLinkDeps {
  nodeId: string;
  bus: Bus;
  local: LocalIndex;
  logger: Logger;
  metrics: Metrics;
  /** A presence change of a watched user from another node (watches.ts decides which watcher is told). */
  onPresence: (user: string, status: PresenceStatus, frame: string) => void;
}

export class BusLink {
  readonly nodeId: string;
  private readonly bus: Bus;
  private readonly local: LocalIndex;
  private readonly logger: Logger;
  private readonly metrics: Metrics;
  private readonly onPresence: BusLinkDeps['onPresence'];
  /** The node's channels, reference-counted; every one delivers through `onEnvelope`. */
  readonly subscriptions: Subscriptions;
  /** Messages this node has sent (their ids). */
  private messages = 0;
  /** Publish failures not yet logged, and when the last log line was written. */
  private failedSinceLog = 0;
  private lastFailureLog = Number.NEGATIVE_INFINITY;

  constructor(deps: BusLinkDeps) {
    this.nodeId = deps.nodeId;
    this.bus = deps.bus;
    this.local = deps.local;
    this.logger = deps.logger;
    this.metrics = deps.metrics;
    this.onPresence = deps.onPresence;
    this.subscriptions = new Subscriptions(deps.bus, deps.logger, this.onEnvelope);
  }

  /**
   * The one bus handler: delivers envelopes from other nodes to the local sessions the channel
   * names. One shared function instead of a closure per channel and connection (~900 B each).
   */
  private readonly onEnvelope = (message: string, channel: string): void => {
    this.metrics.countBus('in');
    const decoded = decodeEnvelope(message);
    if (decoded === undefined) {
      this.logger.warn('ignored a malformed bus envelope');
      return;
    }
    const { header, frame } = decoded;
    if (header.o === this.nodeId) return this.onOwnEnvelope(header, frame, channel);
    if (header.k === 'pres') return channel.startsWith('p:') ? this.onPresence(channel.slice(2), header.st, frame) : undefined;
    const targets = this.targetsOf(channel);
    switch (header.k) {
      case 'dm':
      case 'room':
        for (const r of targets) if (r.id !== header.s) r.deliver(frame, header.t, header.m);
        return;
      case 'event':
        for (const r of targets) r.deliver(frame, 'event', header.m);
        return;
      case 'kick':
        for (const r of [...targets]) if (r.id === header.s) r.kick(CLOSE.replaced);
        return;
    }
  };

  /**
   * This node's own envelope, back from the bus. Its sessions got the message when it was sent,
   * all but those that attached since — a resumed session registering while the publish was on
   * its way: the bus counted it (the sender was told `delivered`), so it gets the message now.
   */
  private onOwnEnvelope(header: Envelope, frame: string, channel: string): void {
    if (header.k !== 'dm' && header.k !== 'room' && header.k !== 'event') return;
    const number = parseInt(header.m.slice(header.m.lastIndexOf('.') + 1), 36);
    for (const r of this.targetsOf(channel)) {
      const state = this.local.state(r);
      if (state === undefined || number > state.since || ('s' in header && r.id === header.s)) continue;
      r.deliver(frame, header.k === 'event' ? 'event' : header.t, header.m);
    }
  }

  /** How many messages this node has numbered so far: a session attached now gets every later one through the bus. */
  get messageCount(): number {
    return this.messages;
  }

  /** The local sessions a bus channel (bus.ts `channels`) stands for. */
  private targetsOf(channel: string): Iterable<Recipient> {
    const name = channel.slice(2);
    if (channel.startsWith('u:')) return this.local.devicesOf(name);
    if (channel.startsWith('d:')) {
      const slash = name.indexOf('/');
      return this.local.recipientsOf(name.slice(0, slash), name.slice(slash + 1));
    }
    if (channel.startsWith('r:')) return this.local.membersOf(name);
    if (channel === channels.broadcast()) return this.local.all();
    return [];
  }

  /** A new message id, unique in the cluster (envelope.ts): this node's id and a counter. */
  nextMessageId(): string {
    return `${this.nodeId}.${(++this.messages).toString(36)}`;
  }

  /** Whether the bus looks usable right now. */
  isUp(): boolean {
    return this.bus.isUp();
  }

  /** Whether a node other than this one may subscribe `channel` (false only when the bus knows without I/O). */
  othersMayListen(channel: string): boolean {
    return this.bus.othersMayListen(channel);
  }

  /**
   * Publishes; how many OTHER nodes received it, or undefined when the bus failed (counted and
   * logged here). Known at once when no other node can listen (one node on the in-process bus):
   * no envelope is built then (measured ~10 % of a relay).
   */
  publish(channel: string, header: Envelope, frame: string): MaybePromise<number | undefined> {
    if (!this.bus.othersMayListen(channel)) return this.bus.isUp() ? 0 : undefined;
    const selfSubscribed = this.subscriptions.has(channel);
    return this.bus.publish(channel, encodeEnvelope(header, frame)).then(
      (count) => this.published(count, selfSubscribed),
      (error: unknown) => this.publishFailed(error),
    );
  }

  /**
   * `publish` for the per-message path: `publication` is told how many OTHER nodes received the
   * message (bus.ts `publishThen` says why an object and not a callback). Told at once when no
   * other node can listen.
   */
  publishThen(channel: string, header: Envelope, frame: string, publication: Publication): void {
    if (!this.bus.othersMayListen(channel)) return publication.reached(this.bus.isUp() ? 0 : undefined);
    publication.link = this;
    publication.selfSubscribed = this.subscriptions.has(channel);
    this.bus.publishThen(channel, encodeEnvelope(header, frame), publication);
  }

  /** The bus's result as OTHER nodes reached; undefined when it failed (counted and logged). */
  othersReached(count: number | undefined, error: unknown, selfSubscribed: boolean): number | undefined {
    return count === undefined ? this.publishFailed(error) : this.published(count, selfSubscribed);
  }

  /** How many OTHER nodes a publish reached. */
  private published(count: number, selfSubscribed: boolean): number {
    this.metrics.countBus('out');
    return Math.max(0, count - (selfSubscribed ? 1 : 0));
  }

  private publishFailed(error: unknown): undefined {
    this.metrics.busPublishErrors.inc();
    // Once per second at most: an outage fails every message (thousands a second), and the
    // metric counts each; the log says it is happening, and how many since the last line.
    this.failedSinceLog++;
    const now = performance.now();
    if (now - this.lastFailureLog >= 1000) {
      this.logger.warn({ err: error, failed: this.failedSinceLog }, 'bus publish failed');
      this.failedSinceLog = 0;
      this.lastFailureLog = now;
    }
    return undefined;
  }
}

/**
 * A message published with `BusLink.publishThen`, waiting for how many OTHER nodes received it.
 * The caller's one object per message: it extends this with what it needs to act on the result.
 */
export abstract class Publication implements PublishWaiter {
  /** Set by `publishThen`: what turns the bus's raw count into other nodes. */
  link: BusLink | undefined = undefined;
  selfSubscribed = false;

  /** How many OTHER nodes received the message; undefined when the bus failed. */
  abstract reached(remote: number | undefined): void;

  published(count: number | undefined, error?: unknown): void {
    this.reached(this.link === undefined ? undefined : this.link.othersReached(count, error, this.selfSubscribed));
  }
}
