// Lazy, reference-counted bus subscriptions (centrifuge's rule): a node
// subscribes a channel when its first local subscriber arrives and drops it
// with the last. A failed subscribe is rolled back, so a later attempt tries
// again instead of believing it is subscribed.
import type { Bus, BusHandler } from '../bus/bus';
import type { Logger } from '../log/logger';

export class Subscriptions {
  private readonly counts = new Map<string, number>();
  private readonly pending = new Map<string, Promise<void>>();

  constructor(
    private readonly bus: Bus,
    private readonly logger: Logger,
  ) {}

  /** Whether this node is (or is becoming) subscribed to `channel`. */
  has(channel: string): boolean {
    return this.counts.has(channel);
  }

  /** Takes one reference; resolves once the channel is subscribed; rejects (and releases the reference) when the bus fails. */
  async add(channel: string, handler: BusHandler): Promise<void> {
    const count = this.counts.get(channel) ?? 0;
    this.counts.set(channel, count + 1);
    if (count > 0) {
      // Someone else's subscribe may still be in flight: wait for it, and share its failure.
      const inFlight = this.pending.get(channel);
      if (inFlight !== undefined) {
        try {
          await inFlight;
        } catch (error) {
          this.release(channel);
          throw error;
        }
      }
      return;
    }
    const subscribing = this.bus.subscribe(channel, handler);
    this.pending.set(channel, subscribing);
    try {
      await subscribing;
    } catch (error) {
      this.release(channel);
      throw error;
    } finally {
      if (this.pending.get(channel) === subscribing) this.pending.delete(channel);
    }
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
