// In-process bus. A MemoryBroker stands where Redis would: every MemoryBus
// attached to the same broker is one "node", so cluster logic can be tested
// in one process without Redis. Delivery is synchronous, which keeps the
// per-publisher order trivially.
import type { Bus, BusHandler } from './bus';

export class MemoryBroker {
  private readonly subscribers = new Map<string, Set<MemoryBus>>();
  /** Buses using this broker: with one (a single node, the usual case) nobody else can listen. */
  buses = 0;

  attach(channel: string, bus: MemoryBus): void {
    let set = this.subscribers.get(channel);
    if (set === undefined) this.subscribers.set(channel, (set = new Set()));
    set.add(bus);
  }

  detach(channel: string, bus: MemoryBus): void {
    const set = this.subscribers.get(channel);
    if (set === undefined) return;
    set.delete(bus);
    if (set.size === 0) this.subscribers.delete(channel);
  }

  subscriberCount(channel: string): number {
    return this.subscribers.get(channel)?.size ?? 0;
  }

  deliver(channel: string, message: string): number {
    const set = this.subscribers.get(channel);
    if (set === undefined) return 0;
    // Copy: a handler may subscribe or unsubscribe while we iterate.
    const targets = [...set];
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

  subscribe(channel: string, handler: BusHandler): Promise<void> {
    this.handlers.set(channel, handler);
    this.broker.attach(channel, this);
    return Promise.resolve();
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
    this.handlers.get(channel)?.(message);
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
