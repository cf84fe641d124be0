// The cluster bus on Redis pub/sub.
//
//   node A: publish(ch, m1) publish(ch, m2) publish(ch2, m3)   (one event-loop turn)
//        └─► setImmediate flush: one script call, PUBLISH <prefix>ch "2:m1 2:m2" and PUBLISH <prefix>ch2 "..."
//   Redis ──► every node subscribed to ch ──► split the batch ──► handler(m1), handler(m2)
//
// Batching: messages published during one event-loop turn for the same
// channel go out as one PUBLISH (length-prefixed frames in one payload), and
// all of a turn's PUBLISHes go in one call of lua/publish-batches.lua. ioredis
// auto-pipelining keeps only one pipeline in flight per connection, so each
// message would wait a full round trip; gathering a turn's messages measured
// 1.5–2× faster here, and one script call instead of a pipeline of PUBLISHes
// took the sending node's CPU per message down 1.2–1.8× (bench W2). All
// messages of a batch share its result: the PUBLISH subscriber count.
//
// Order (bus.ts): a user's channels u:<user>, d:<user>/<device> and p:<user>
// reach the same devices, so the order between them is the order a device
// sees (SPEC §3.2, issue 12: offer to bob, candidate to bob's d1, candidate to
// bob, batched per channel, reached d1 as 1, 3, 2). They share a hash tag, and
// batches never reorder messages of one tag: a message joins its channel's
// batch only while that batch took the tag's latest message; otherwise it
// begins a new batch. Batches go out in the order they began, and Redis runs
// them in that order (see flush). Channels of other tags do not split a batch:
// a turn to 1000 users is still one PUBLISH per user (bench W2).
//
// Subscriptions are lazy and per channel (the router's Subscriptions decide);
// never a pattern subscription. On Redis Cluster, SPUBLISH/SSUBSCRIBE (sharded
// pub/sub) spread channels over the shards; the hash tag puts a user's
// channels in the slot of the user's presence keys.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../log/logger';
import { publishAsPromise, type Bus, type BusHandler, type PublishWaiter } from './bus';
import type { RedisClient } from './redis-clients';

export interface RedisBusOptions {
  commands: RedisClient;
  subscriber: RedisClient;
  prefix: string;
  sharded: boolean;
  /** Whether every shard answers (redis-clients.ts); absent: one server. */
  shardsUp?: () => boolean;
  logger: Logger;
}

/** Consecutive messages of one turn for one channel (of its hash tag), and who waits for their PUBLISH's result. */
interface Batch {
  channel: string;
  /** hashTag(channel), kept for the Redis name and to tell whether the batch still takes the tag's messages. */
  tag: string;
  messages: string[];
  waiters: PublishWaiter[];
}

/** `<length>:<message>` repeated: cheap to split, and messages may contain any character. */
export function encodeBatch(messages: readonly string[]): string {
  let out = '';
  for (const message of messages) out += `${message.length}:${message}`;
  return out;
}

/**
 * The batch as UTF-8 bytes outside the JS heap. A PUBLISH's arguments live until Redis replies,
 * which under load is a full event-loop turn or more; as strings (ropes of every message's
 * envelope, frame and the client's original text) they survived young-generation GCs and were
 * copied and promoted (bench W2, 1000 pairs: scavenges were ~30 % of the sending node).
 */
function offHeap(messages: readonly string[]): Buffer {
  return Buffer.from(encodeBatch(messages));
}

/** Returns undefined when the payload is not a well-formed batch. */
export function decodeBatch(payload: string): string[] | undefined {
  const messages: string[] = [];
  let at = 0;
  while (at < payload.length) {
    const colon = payload.indexOf(':', at);
    if (colon === -1 || colon === at || colon - at > 10) return undefined;
    const length = Number(payload.slice(at, colon));
    if (!Number.isInteger(length) || length < 0 || colon + 1 + length > payload.length) return undefined;
    messages.push(payload.slice(colon + 1, colon + 1 + length));
    at = colon + 1 + length;
  }
  return messages;
}

/** The Redis name of a bus channel. The `{tag}` keeps a user's channels and keys in one cluster slot. */
export function redisChannel(prefix: string, channel: string, tag = hashTag(channel)): string {
  return `${prefix}{${tag}}${channel}`;
}

export function hashTag(channel: string): string {
  // d:<user>/<device> and p:<user> share the user's slot with u:<user>.
  if (channel.startsWith('d:')) return `u:${channel.slice(2, channel.indexOf('/'))}`;
  if (channel.startsWith('p:')) return `u:${channel.slice(2)}`;
  return channel;
}

/** publish-batches.lua, as ioredis defines it on the commands client. */
interface PublishBatches {
  sbPublishBatches(...channelsAndPayloads: (string | Buffer)[]): Promise<number[]>;
}

/** Messages gathered before a flush that does not wait for the end of the turn. */
const FLUSH_AT_MESSAGES = 256;

export class RedisBus implements Bus {
  readonly kind = 'redis';
  private readonly handlers = new Map<string, BusHandler>();
  private readonly channelOf = new Map<string, string>();
  /** Bumped by each subscribe: an unsubscribe in flight drops the handler only if none came since. */
  private readonly generation = new Map<string, number>();
  /** The turn's batches, in the order they began: the order they are published in. */
  private pending: Batch[] = [];
  /** Each channel's newest pending batch. */
  private newest = new Map<string, Batch>();
  /** The pending batch that took each hash tag's latest message: the only one of the tag that may grow. */
  private open = new Map<string, Batch>();
  private flushScheduled = false;
  private pendingMessages = 0;
  private readonly flushSoon = (): void => {
    this.flushScheduled = false;
    this.flush();
  };
  private closed = false;
  private readonly onMessage = (redisName: string, payload: string) => this.receive(redisName, payload);

  private readonly commands: RedisClient & PublishBatches;

  constructor(private readonly options: RedisBusOptions) {
    options.subscriber.on(options.sharded ? 'smessage' : 'message', this.onMessage);
    options.commands.defineCommand('sbPublishBatches', { numberOfKeys: 0, lua: readFileSync(join(__dirname, 'lua', 'publish-batches.lua'), 'utf8') });
    this.commands = options.commands as RedisClient & PublishBatches;
  }

  async subscribe(channel: string, handler: BusHandler): Promise<void> {
    const name = redisChannel(this.options.prefix, channel);
    this.generation.set(channel, (this.generation.get(channel) ?? 0) + 1);
    this.handlers.set(channel, handler);
    this.channelOf.set(name, channel);
    const { subscriber, sharded } = this.options;
    if (sharded) await subscriber.ssubscribe(name);
    else await subscriber.subscribe(name);
  }

  /**
   * Messages published before Redis ran the UNSUBSCRIBE still arrive until its reply, and are
   * handed to the handler until then (a session going away keeps them for its resume): the
   * handler goes with the reply, unless the channel was subscribed again meanwhile.
   */
  async unsubscribe(channel: string): Promise<void> {
    const name = redisChannel(this.options.prefix, channel);
    const generation = this.generation.get(channel);
    const { subscriber, sharded } = this.options;
    try {
      if (sharded) await subscriber.sunsubscribe(name);
      else await subscriber.unsubscribe(name);
    } finally {
      if (this.generation.get(channel) === generation) {
        this.handlers.delete(channel);
        this.channelOf.delete(name);
        this.generation.delete(channel);
      }
    }
  }

  publish(channel: string, message: string): Promise<number> {
    return publishAsPromise(this, channel, message);
  }

  publishThen(channel: string, message: string, waiter: PublishWaiter): void {
    if (this.closed) return waiter.published(undefined, new Error('bus closed'));
    if (!this.isUp()) return waiter.published(undefined, new Error('redis is not connected'));
    // Joining a batch costs one lookup more than a batch per channel did, and allocates nothing;
    // beginning one costs one Map.set more and the tag (computed at flush before). With 1000
    // users a turn (bench W2) nearly every message begins a batch; u:<user> is its own tag.
    let batch = this.newest.get(channel);
    if (batch === undefined || this.open.get(batch.tag) !== batch) batch = this.begin(channel);
    batch.messages.push(message);
    batch.waiters.push(waiter);
    // A busy turn (one poll phase reading thousands of sockets) would otherwise hold every message
    // until its end: send them on now, so that Redis and the receiving nodes work while we read on.
    if (++this.pendingMessages >= FLUSH_AT_MESSAGES) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushSoon);
    }
  }

  /** A new batch for `channel`, after every pending one: from now on its tag's messages go here. */
  private begin(channel: string): Batch {
    const tag = hashTag(channel);
    const batch: Batch = { channel, tag, messages: [], waiters: [] };
    this.pending.push(batch);
    this.newest.set(channel, batch);
    this.open.set(tag, batch);
    return batch;
  }

  othersMayListen(): boolean {
    return true;
  }

  isUp(): boolean {
    const { commands, subscriber, shardsUp } = this.options;
    return !this.closed && commands.status === 'ready' && subscriber.status === 'ready' && (shardsUp?.() ?? true);
  }

  async close(): Promise<void> {
    this.flush();
    this.closed = true;
    this.options.subscriber.off(this.options.sharded ? 'smessage' : 'message', this.onMessage);
    this.handlers.clear();
    this.channelOf.clear();
    return Promise.resolve();
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    this.pendingMessages = 0;
    const batches = this.pending;
    // New maps, not clear(): V8 allocates a cleared map's new table, and each one it grows into, in
    // the generation of the old table. These maps live as long as the bus, so with clear() every
    // turn's tables were allocated in the old generation, held the turn's batches as old-to-young
    // references, and were reclaimed only by full GCs (bench W2, 100 pairs, window 10: sending
    // node's GC 7 -> 15 %, 6 -> 8 µs a message; a promoted Map refilled with 1000 objects 20,000
    // times: 21-25 s of CPU with clear(), 1.1-1.5 s with a new Map).
    this.pending = [];
    this.newest = new Map();
    this.open = new Map();
    const { commands, prefix, sharded } = this.options;
    if (sharded) {
      // A cluster script call (or pipeline) must stay within one slot: one SPUBLISH per batch,
      // each routed to its shard by ioredis. Order holds for a tag: one tag is one slot, which
      // ioredis sends to the slot's master on its one connection, in call order (Cluster
      // sendCommand), and Redis runs a connection's commands in order. Not while the slot map
      // changes: a SPUBLISH answered MOVED or TRYAGAIN is sent again later and may be overtaken
      // (resharding or failover; pub/sub is at-most-once then anyway).
      for (const { channel, tag, messages, waiters } of batches)
        commands.spublish(redisChannel(prefix, channel, tag), offHeap(messages)).then(
          (count) => this.settle(waiters, Number(count)),
          (error: unknown) => this.settle(waiters, undefined, error),
        );
      return;
    }
    // One script call publishes every batch, in order (a script runs its PUBLISHes one after the
    // other; a subscriber's connection gets the messages in that order). A pipeline of PUBLISHes
    // costs ioredis a command object, a promise and a timeout timer per channel, held until Redis
    // replies; with many recipients a turn has about as many channels as messages (bench W2,
    // 1000 pairs). An early flush is a script call of its own, sent before the next one on the
    // same connection, and Redis runs a connection's commands in order.
    const args: (string | Buffer)[] = [];
    // Only the waiters wait for the reply, not the batches: their messages are garbage once copied.
    const waiting: PublishWaiter[][] = [];
    for (const { channel, tag, messages, waiters } of batches) {
      args.push(redisChannel(prefix, channel, tag), offHeap(messages));
      waiting.push(waiters);
    }
    this.commands.sbPublishBatches(...args).then(
      (counts) => waiting.forEach((waiters, i) => this.settle(waiters, Number(counts[i]))),
      (error: unknown) => waiting.forEach((waiters) => this.settle(waiters, undefined, error)),
    );
  }

  /** Tells every publisher of the batch its result; one that throws does not keep it from the others. */
  private settle(waiters: readonly PublishWaiter[], count: number | undefined, error?: unknown): void {
    for (const waiter of waiters) {
      try {
        waiter.published(count, error);
      } catch (thrown) {
        this.options.logger.error({ err: thrown }, 'a bus publish callback failed');
      }
    }
  }

  private receive(redisName: string, payload: string): void {
    const channel = this.channelOf.get(redisName);
    if (channel === undefined) return; // another deployment's prefix, or a channel dropped a moment ago
    const handler = this.handlers.get(channel);
    if (handler === undefined) return;
    const messages = decodeBatch(payload);
    if (messages === undefined) {
      this.options.logger.warn({ channel: channel.slice(0, 2) }, 'ignored a malformed bus batch');
      return;
    }
    for (const message of messages) handler(message, channel);
  }
}
