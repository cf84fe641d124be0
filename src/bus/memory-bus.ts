// In-process bus. A MemoryBroker stands where Redis would: every MemoryBus
// attached to the same broker is one "node", so cluster logic can be tested
// in one process without Redis. Delivery is synchronous, which keeps the
// per-publisher order trivially.
import { publishAsPromise, type Bus, type BusHandler, type PublishWaiter } from './bus';

export class MemoryBroker {
  /**
   * The buses ("nodes") on this broker. Deliveries ask each whether it subscribes the channel
   * rather than keeping a channel → buses map: there are one to three buses (one in production,
   * a few in tests), and such a map would hold two entries per connection (~180 B, bench W4).
   */
  private readonly members: MemoryBus[] = [];

  /** Buses using this broker: with one (a single node, the usual case) nobody else can listen. */
  get buses(): number {
    return this.members.length;
  }

  join(bus: MemoryBus): void {
    this.members.push(bus);
  }

  leave(bus: MemoryBus): void {
    const at = this.members.indexOf(bus);
    if (at !== -1) this.members.splice(at, 1);
  }

  subscriberCount(channel: string): number {
    let count = 0;
    for (const bus of this.members) if (bus.subscribes(channel)) count++;
    return count;
  }

  deliver(channel: string, message: string): number {
    // Decided before delivering: a handler may subscribe or unsubscribe while we go.
    const targets = this.members.filter((bus) => bus.subscribes(channel));
    for (const bus of targets) bus.receive(channel, message);
    return targets.length;
  }
}

export class MemoryBus implements Bus {
  readonly kind = 'memory';
  private readonly handlers = new Map<string, BusHandler>();
  private closed = false;

  constructor(private readonly broker: MemoryBroker = new MemoryBroker()) {
    broker.join(this);
  }

  /** Synchronous: a session's channels are subscribed within its open callback (bench W5). */
  subscribe(channel: string, handler: BusHandler): void {
    this.handlers.set(channel, handler);
  }

  unsubscribe(channel: string): Promise<void> {
    this.handlers.delete(channel);
    return Promise.resolve();
  }

  publish(channel: string, message: string): Promise<number> {
    return publishAsPromise(this, channel, message);
  }

  publishThen(channel: string, message: string, waiter: PublishWaiter): void {
    if (this.closed) waiter.published(undefined, new Error('bus closed'));
    else waiter.published(this.broker.deliver(channel, message));
  }

  othersMayListen(channel: string): boolean {
    // Answered without looking the channel up when this is the only node (a map lookup per message).
    if (this.broker.buses === 1) return false;
    return this.broker.subscriberCount(channel) - (this.handlers.has(channel) ? 1 : 0) > 0;
  }

  subscribes(channel: string): boolean {
    return this.handlers.has(channel);
  }

  /** Called by the broker. */
  receive(channel: string, message: string): void {
    this.handlers.get(channel)?.(message, channel);
  }

  isUp(): boolean {
    return !this.closed;
  }

  close(): Promise<void> {
    if (!this.closed) this.broker.leave(this);
    this.closed = true;
    this.handlers.clear();
    return Promise.resolve();
  }
}
