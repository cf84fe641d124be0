// In-process bus. A MemoryBroker stands where Redis would: every MemoryBus
// attached to the same broker is one "node", so cluster logic can be tested
// in one process without Redis. Delivery is synchronous, which keeps the
// per-publisher order trivially.
import type { Bus, BusHandler } from './bus';

export class MemoryBroker {
  /** Arrays, not Sets: a channel has one or a few subscribing buses, and there is one channel per connection or more. */
  private readonly subscribers = new Map<string, MemoryBus[]>();
  /** Buses using this broker: with one (a single node, the usual case) nobody else can listen. */
  buses = 0;

  attach(channel: string, bus: MemoryBus): void {
    const list = this.subscribers.get(channel);
    if (list === undefined) this.subscribers.set(channel, [bus]);
    else if (!list.includes(bus)) list.push(bus);
  }

  detach(channel: string, bus: MemoryBus): void {
    const list = this.subscribers.get(channel);
    if (list === undefined) return;
    const at = list.indexOf(bus);
    if (at !== -1) list.splice(at, 1);
    if (list.length === 0) this.subscribers.delete(channel);
  }

  subscriberCount(channel: string): number {
    return this.subscribers.get(channel)?.length ?? 0;
  }

  deliver(channel: string, message: string): number {
    const list = this.subscribers.get(channel);
    if (list === undefined) return 0;
    // Copy: a handler may subscribe or unsubscribe while we iterate.
    const targets = list.slice();
    for (const bus of targets) bus.receive(channel, message);
    return targets.length;
  }
}

export class MemoryBus implements Bus {
  readonly kind = 'memory';
  private readonly handlers = new Map<string, BusHandler>();
  private closed = false;

  constructor(private readonly broker: MemoryBroker = new MemoryBroker()) {
    broker.buses++;
  }

  /** Synchronous: a session's channels are subscribed within its open callback (bench W5). */
  subscribe(channel: string, handler: BusHandler): void {
    this.handlers.set(channel, handler);
    this.broker.attach(channel, this);
  }

  unsubscribe(channel: string): Promise<void> {
    this.handlers.delete(channel);
    this.broker.detach(channel, this);
    return Promise.resolve();
  }

  publish(channel: string, message: string): Promise<number> {
    if (this.closed) return Promise.reject(new Error('bus closed'));
    return Promise.resolve(this.broker.deliver(channel, message));
  }

  othersMayListen(channel: string): boolean {
    // Answered without looking the channel up when this is the only node (a map lookup per message).
    if (this.broker.buses === 1) return false;
    return this.broker.subscriberCount(channel) - (this.handlers.has(channel) ? 1 : 0) > 0;
  }

  /** Called by the broker. */
  receive(channel: string, message: string): void {
    this.handlers.get(channel)?.(message, channel);
  }

  isUp(): boolean {
    return !this.closed;
  }

  close(): Promise<void> {
    if (!this.closed) this.broker.buses--;
    this.closed = true;
    for (const channel of this.handlers.keys()) this.broker.detach(channel, this);
    this.handlers.clear();
    return Promise.resolve();
  }
}
