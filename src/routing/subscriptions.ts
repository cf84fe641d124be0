// Lazy, reference-counted bus subscriptions (centrifuge's rule): a node
// subscribes a channel when its first local subscriber arrives and drops it
// with the last.
//
// Every reference is a handle (`Subscription`) that gives back exactly what it
// took, once: a rollback or a leave calls `release()` on its own handle and can
// never drop a reference someone else holds (a bare remove(channel) after a
// failed subscribe did: it cut another member off a room). A subscribe that
// fails releases its handle itself, so a later attempt tries again instead of
// believing it is subscribed.
import type { Bus, BusHandler } from '../bus/bus';
import type { Logger } from '../log/logger';
import type { MaybePromise } from '../util/maybe-promise';

/** One reference to a channel. */
export class Subscription {
  private held = true;
  /** Done once the channel is subscribed: at once on the in-process bus or when it already was; rejects when the bus failed (the handle is then released). */
  ready: MaybePromise<void> = undefined;

  constructor(
    private readonly owner: Subscriptions,
    readonly channel: string,
  ) {}

  /**
   * Gives the reference back; the second and later calls do nothing. A promise when it was the
   * channel's last: settles once the bus unsubscribed (or failed to).
   */
  release(): Promise<void> | undefined {
    if (!this.held) return undefined;
    this.held = false;
    return this.owner.drop(this.channel);
  }
}

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

  /** Takes one reference to `channel`; subscribes with the first. */
  take(channel: string): Subscription {
    const count = this.counts.get(channel) ?? 0;
    this.counts.set(channel, count + 1);
    const sub = new Subscription(this, channel);
    // Someone else's subscribe may still be in flight: wait for it, and share its failure.
    const subscribing = count > 0 ? this.pending.get(channel) : this.subscribe(channel);
    if (subscribing !== undefined) {
      const ready = subscribing.catch((error: unknown) => {
        void sub.release();
        throw error;
      });
      // Handled here so that a caller that does not wait (a connect during an outage) leaves no
      // unhandled rejection; callers that wait still see the failure.
      ready.catch(() => undefined);
      sub.ready = ready;
    }
    return sub;
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

  /** Called by a handle's `release()`: drops one reference and unsubscribes with the last (settling when the bus did). */
  drop(channel: string): Promise<void> | undefined {
    const count = this.counts.get(channel);
    if (count === undefined) return undefined;
    if (count > 1) return void this.counts.set(channel, count - 1);
    this.counts.delete(channel);
    return this.bus.unsubscribe(channel).catch((error: unknown) => {
      // Harmless beyond a few stray messages, which the router ignores: nobody local wants them.
      this.logger.warn({ err: error, channel: channel.slice(0, 2) }, 'bus unsubscribe failed');
    });
  }
}
