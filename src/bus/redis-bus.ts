// The cluster bus on Redis pub/sub.
//
//   node A: publish(ch, m1) publish(ch, m2) publish(ch2, m3)   (one event-loop turn)
//        └─► setImmediate flush: one script call, PUBLISH <prefix>ch "2:m1 2:m2" and PUBLISH <prefix>ch2 "..."
//   Redis ──► every node subscribed to ch ──► split the batch ──► handler(m1), handler(m2)
//
// Batching: every message published during one event-loop turn for the same
// channel goes out as one PUBLISH (length-prefixed frames in one payload), and
// all of a turn's PUBLISHes go in one call of lua/publish-batches.lua. ioredis
// auto-pipelining keeps only one pipeline in flight per connection, so each
// message would wait a full round trip; gathering a turn's messages measured
// 1.5–2× faster here, and one script call instead of a pipeline of PUBLISHes
// took the sending node's CPU per message down 1.2–1.8× (bench W2). All
// messages of a batch share its result: the PUBLISH subscriber count.
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

/** One turn's messages for one channel, and who waits for their PUBLISH's result. */
interface Batch {
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
export function redisChannel(prefix: string, channel: string): string {
  return `${prefix}{${hashTag(channel)}}${channel}`;
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
  private pending = new Map<string, Batch>();
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
    this.handlers.set(channel, handler);
    this.channelOf.set(name, channel);
    const { subscriber, sharded } = this.options;
    if (sharded) await subscriber.ssubscribe(name);
    else await subscriber.subscribe(name);
  }

  async unsubscribe(channel: string): Promise<void> {
    const name = redisChannel(this.options.prefix, channel);
    this.handlers.delete(channel);
    this.channelOf.delete(name);
    const { subscriber, sharded } = this.options;
    if (sharded) await subscriber.sunsubscribe(name);
    else await subscriber.unsubscribe(name);
  }

  publish(channel: string, message: string): Promise<number> {
    return publishAsPromise(this, channel, message);
  }

  publishThen(channel: string, message: string, waiter: PublishWaiter): void {
    if (this.closed) return waiter.published(undefined, new Error('bus closed'));
    if (!this.isUp()) return waiter.published(undefined, new Error('redis is not connected'));
    let batch = this.pending.get(channel);
    if (batch === undefined) this.pending.set(channel, (batch = { messages: [], waiters: [] }));
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
    if (this.pending.size === 0) return;
    this.pendingMessages = 0;
    const batches = this.pending;
    this.pending = new Map();
    const { commands, prefix, sharded } = this.options;
    if (sharded) {
      // A cluster script call (or pipeline) must stay within one slot: one SPUBLISH per channel,
      // each routed to its shard by ioredis.
      for (const [channel, { messages, waiters }] of batches)
        commands.spublish(redisChannel(prefix, channel), offHeap(messages)).then(
          (count) => this.settle(waiters, Number(count)),
          (error: unknown) => this.settle(waiters, undefined, error),
        );
      return;
    }
    // One script call publishes every channel's batch. A pipeline of PUBLISHes costs ioredis a
    // command object, a promise and a timeout timer per channel, held until Redis replies; with
    // many recipients a turn has about as many channels as messages (bench W2, 1000 pairs).
    const args: (string | Buffer)[] = [];
    const waiting: PublishWaiter[][] = [];
    for (const [channel, { messages, waiters }] of batches) {
      args.push(redisChannel(prefix, channel), offHeap(messages));
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
