// The cluster bus: publish/subscribe between nodes (SPEC: "nodes share nothing
// but Redis"). Implementations: memory-bus.ts (one process; the default and
// what unit tests use) and, for a cluster, a Redis one.
//
// Guarantees every implementation keeps:
// - at-most-once: a message is delivered to each subscribed node once or not
//   at all (Redis pub/sub semantics); nothing is stored for absent nodes;
// - per-publisher order: messages one node publishes to one channel arrive at
//   every subscriber in the order they were published; so do the messages it
//   publishes to one user's channels (user, device and presence: `channels`
//   below), taken together. A device hears on both its user's and its own
//   channel, and SPEC §3.2 keeps order per (sender, recipient) whichever way
//   the sender addressed it (issue 12). Between other channels, no order;
// - a node receives its own publishes on channels it subscribes to (the
//   health probe relies on it; the router drops its own envelopes);
// - `publish` resolves with the number of subscribed nodes, this node
//   included when it subscribes the channel — the router derives "handed to
//   the recipient's node" (ack) or `peer_offline` from it.

/**
 * Receives a message and the channel it came on: one handler can serve every channel (the router
 * passes one function for all of them instead of a closure per channel: ~900 B less per connection).
 */
import type { MaybePromise } from '../util/maybe-promise';

export type BusHandler = (message: string, channel: string) => void;

/**
 * Waits for a publish's result: `published` is called once with the number of subscribed nodes,
 * or undefined (and why) when it failed. An object with a method rather than a callback: on the
 * per-message path the router's one small object is then all that waits for Redis (bench W2).
 */
export interface PublishWaiter {
  published(count: number | undefined, error?: unknown): void;
}

export interface Bus {
  readonly kind: 'memory' | 'redis';
  /**
   * Subscribes this node to `channel`; done (or resolved) once messages published afterwards will
   * arrive — at once on the in-process bus. One handler per channel.
   */
  subscribe(channel: string, handler: BusHandler): MaybePromise<void>;
  unsubscribe(channel: string): Promise<void>;
  /** Resolves with the number of nodes subscribed to `channel` (this one included); rejects when the bus is down. */
  publish(channel: string, message: string): Promise<number>;
  /**
   * `publish` for the per-message hot path: `waiter` is told the result once. What a pending
   * publish holds lives until Redis answers, a turn or more under load, and survives the young
   * generation's collections then: one object per message instead of a promise chain, or of a
   * closure and its context per layer, is what they copy (~88 B instead of ~240 B, bench W2).
   */
  publishThen(channel: string, message: string, waiter: PublishWaiter): void;
  /**
   * False only when the bus knows, without I/O, that no other node subscribes to `channel` (the
   * in-process bus does); the router then skips encoding and publishing an envelope nobody would
   * read. The Redis bus cannot know without a round trip and answers true.
   */
  othersMayListen(channel: string): boolean;
  /** Whether the bus looks usable right now (connection state); the health check adds a round-trip probe. */
  isUp(): boolean;
  close(): Promise<void>;
}

/** Channel names. Ids may contain ':', so the device channel joins user and device with '/', which ids cannot contain. */
export const channels = {
  user: (user: string) => `u:${user}`,
  device: (user: string, device: string) => `d:${user}/${device}`,
  room: (room: string) => `r:${room}`,
  presence: (user: string) => `p:${user}`,
  node: (node: string) => `n:${node}`,
  /** Relayed tunnel requests for the sidecars of one node (tunnel/node-relay.ts). */
  tunnel: (node: string) => `t:${node}`,
  broadcast: () => 'all',
};

/** `publish` made of `publishThen`: every bus implements the callback form once and shares this. */
export function publishAsPromise(bus: Pick<Bus, 'publishThen'>, channel: string, message: string): Promise<number> {
  return new Promise((resolve, reject) =>
    bus.publishThen(channel, message, {
      published: (count, error) => (count === undefined ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(count)),
    }),
  );
}
