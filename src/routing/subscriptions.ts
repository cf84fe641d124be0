// Lazy, reference-counted bus subscriptions (centrifuge's rule): a node
// subscribes a channel when its first local subscriber arrives and drops it
// with the last. A failed subscribe is rolled back, so a later attempt tries
// again instead of believing it is subscribed.
import type { Bus, BusHandler } from '../bus/bus';
import type { Logger } from '../log/logger';
import type { MaybePromise } from '../util/maybe-promise';

export class Subscriptions {
  private readonly counts = new Map<string, number>();
  private readonly pending = new Map<string, Promise<void>>();

  /** `handler` receives every channel's messages (the router's dispatcher). */
  constructor(
    private readonly bus: Bus,
    private readonly logger: Logger,
    private readonly handler: BusHandler,
  ) {}

  /** Whether this node is (or is becoming) subscribed to `channel`. */
  has(channel: string): boolean {
    return this.counts.has(channel);
  }

  /**
   * Takes one reference; done once the channel is subscribed — at once when the bus subscribes
   * synchronously (in-process) or the channel already was. Rejects (and releases the reference)
   * when the bus fails.
   */
  add(channel: string): MaybePromise<void> {
    const count = this.counts.get(channel) ?? 0;
    this.counts.set(channel, count + 1);
    // Someone else's subscribe may still be in flight: wait for it, and share its failure.
    const subscribing = count > 0 ? this.pending.get(channel) : this.subscribe(channel);
    if (subscribing === undefined) return;
    return subscribing.catch((error: unknown) => {
      this.release(channel);
      throw error;
    });
  }

  /** Subscribes; a promise (kept in `pending` until it settles) only when the bus answers later. */
  private subscribe(channel: string): Promise<void> | undefined {
    let subscribing: MaybePromise<void>;
    try {
      subscribing = this.bus.subscribe(channel, this.handler);
    } catch (error) {
      subscribing = Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    if (!(subscribing instanceof Promise)) return undefined;
    const settled = subscribing.finally(() => {
      if (this.pending.get(channel) === settled) this.pending.delete(channel);
    });
    this.pending.set(channel, settled);
    return settled;
  }

  /** Drops one reference; unsubscribes with the last. */
  remove(channel: string): void {
    if (this.release(channel)) {
      this.bus.unsubscribe(channel).catch((error: unknown) => {
        // Harmless beyond a few stray messages, which the router ignores: nobody local wants them.
        this.logger.warn({ err: error, channel: channel.slice(0, 2) }, 'bus unsubscribe failed');
      });
    }
  }

  /** Returns true when the last reference went away. */
  private release(channel: string): boolean {
    const count = this.counts.get(channel);
    if (count === undefined) return false;
    if (count > 1) {
      this.counts.set(channel, count - 1);
      return false;
    }
    this.counts.delete(channel);
    return true;
  }
}
