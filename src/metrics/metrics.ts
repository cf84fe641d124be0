// Every Prometheus metric of a node, defined in one place on a registry of its
// own (no global registry: several nodes can run in one test process).
// Names are kept from the design Switchboard descends from (SPEC §6.2) so that
// existing dashboards work. No label ever carries a user, device, room or path.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ERROR_CODES, type ErrorCode } from '../errors/codes';
import { FastHistogram } from './fast-histogram';

export class Metrics {
  readonly registry = new Registry();

  readonly activeConnections = new Gauge({
    name: 'signaling_active_connections',
    help: 'App WebSocket connections open on this node',
    registers: [this.registry],
  });
  // Frame and bus counters run once per message: the hot path adds to plain numbers, and
  // prom-client reads them at scrape time (collect). A prom-client inc() per frame cost ~7 % of a relay.
  private readonly received = new Map<string, number>();
  private readonly sent = new Map<string, number>();

  readonly messagesReceived: Counter<'type'> = new Counter({
    name: 'signaling_messages_received_total',
    help: 'App frames received, by frame type (invalid frames count as "invalid")',
    labelNames: ['type'] as const,
    registers: [this.registry],
    collect: (): void => flushInto(this.received, this.messagesReceived, 'type'),
  });
  readonly messagesSent: Counter<'type'> = new Counter({
    name: 'signaling_messages_sent_total',
    help: 'App frames sent, by frame type',
    labelNames: ['type'] as const,
    registers: [this.registry],
    collect: (): void => flushInto(this.sent, this.messagesSent, 'type'),
  });
  readonly rateLimitExceeded = new Counter({
    name: 'signaling_rate_limit_exceeded_total',
    help: 'Frames rejected by the per-user rate limit',
    registers: [this.registry],
  });
  readonly connectionDuration = new Histogram({
    name: 'signaling_connection_duration_seconds',
    help: 'Lifetime of app connections',
    buckets: [1, 10, 60, 300, 900, 3600, 4 * 3600, 24 * 3600],
    registers: [this.registry],
  });
  // Observed once per delivered message: a histogram without prom-client's per-call overhead.
  readonly deliverySeconds = new FastHistogram(
    'signaling_message_delivery_seconds',
    'Time from receiving a frame to handing it to the recipients (local) or to the bus (remote)',
    'scope',
    ['local', 'remote'],
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
    this.registry,
  );
  private readonly bus = new Map<string, number>();
  readonly busMessages: Counter<'direction'> = new Counter({
    name: 'signaling_bus_messages_total',
    help: 'Messages published to (out) and received from (in) the cluster bus',
    labelNames: ['direction'] as const,
    registers: [this.registry],
    collect: (): void => flushInto(this.bus, this.busMessages, 'direction'),
  });
  readonly busUp = new Gauge({
    name: 'signaling_bus_up',
    help: '1 when the cluster bus answers and a probe message comes back to this node, else 0',
    registers: [this.registry],
  });
  readonly relayRequests = new Counter({
    name: 'relay_requests_total',
    help: 'Public requests relayed to tunnels, by status class (2xx, 4xx, 5xx...)',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  readonly relayDuration = new Histogram({
    name: 'relay_request_duration_seconds',
    help: 'Duration of relayed public requests',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly tunnelsActive = new Gauge({
    name: 'relay_tunnels_active',
    help: 'Tunnel sidecars connected to this node',
    registers: [this.registry],
  });

  readonly relayWebSockets = new Gauge({
    name: 'relay_websockets_active',
    help: 'Public WebSockets relayed to tunnels from this node',
    registers: [this.registry],
  });
  readonly rateLimitQueueFull = new Counter({
    name: 'signaling_rate_limit_queue_full_total',
    help: 'Frames the cluster rate limiter decided at once instead of waiting for Redis: bound="user" refused (frames already waiting claim the budget left), bound="node" decided from this node\'s count (too many frames waiting on the node)',
    labelNames: ['bound'] as const,
    registers: [this.registry],
  });
  readonly connectionsRejected = new Counter({
    name: 'signaling_connections_rejected_total',
    help: 'Upgrades refused or closed at connect, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly slowConsumerCloses = new Counter({
    name: 'signaling_slow_consumer_closes_total',
    help: 'Connections closed with 4010 because their send buffer passed MAX_BUFFERED_BYTES',
    registers: [this.registry],
  });
  readonly queueOverflows: Counter<'queue'> = new Counter({
    name: 'signaling_queue_overflows_total',
    help: 'Items refused because a bounded queue was full, by queue (early_frames: frames for a connection before its welcome; frames_waiting: client frames waiting for a cluster rate-limit decision)',
    labelNames: ['queue'] as const,
    registers: [this.registry],
  });
  // An error frame can answer every frame of a flood (rate_limited, bad_message): counted like the frames above.
  private readonly errors = new Map<string, number>();
  readonly errorFrames: Counter<'code'> = new Counter({
    name: 'signaling_errors_total',
    help: 'Error frames sent to app clients, by code (the fixed set of src/errors/codes.ts)',
    labelNames: ['code'] as const,
    registers: [this.registry],
    collect: (): void => flushInto(this.errors, this.errorFrames, 'code'),
  });
  readonly draining = new Gauge({
    name: 'signaling_draining',
    help: '1 from the moment the node starts draining (SIGTERM, SIGINT) until it exits, else 0',
    registers: [this.registry],
  });
  readonly maxConnections = new Gauge({
    name: 'signaling_max_connections',
    help: 'The configured MAX_CONNECTIONS of this node (0: no limit but the file descriptors)',
    registers: [this.registry],
  });
  readonly resumes: Counter<'result'> = new Counter({
    name: 'signaling_resumes_total',
    help: 'Reconnects with ?resume=, by result: resumed, or the reason it was refused (expired, forbidden, overflow, taken, unavailable)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly replayedMessages = new Counter({
    name: 'signaling_replayed_messages_total',
    help: 'Messages replayed to resumed or reclaimed sessions (each once: what also arrived live is not counted)',
    registers: [this.registry],
  });
  readonly reclaims: Counter<'result'> = new Counter({
    name: 'signaling_resume_reclaims_total',
    help: 'Sessions this node took back after its lease lapsed (Redis restart or failover, a stall), by result: reclaimed, or lost to a resume elsewhere',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly keptMessages: Counter<'result'> = new Counter({
    name: 'signaling_resume_kept_total',
    help: 'Messages offered to the replay buffer of an away session, by result: queued, overflow (the buffer was full: its resume will be refused), gone (its window had ended)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly busPublishErrors = new Counter({
    name: 'signaling_bus_publish_errors_total',
    help: 'Bus publishes that failed; the affected senders were told `unavailable`',
    registers: [this.registry],
  });

  readonly deliveredLocal = this.deliverySeconds.child('local');
  readonly deliveredRemote = this.deliverySeconds.child('remote');

  /** Counts a sent frame (`type` is one of the known frame types: bounded cardinality). */
  countSent(type: string): void {
    this.sent.set(type, (this.sent.get(type) ?? 0) + 1);
  }

  /** Counts an error frame sent to an app client. */
  countError(code: ErrorCode): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }

  countReceived(type: string): void {
    this.received.set(type, (this.received.get(type) ?? 0) + 1);
  }

  /** Counts a message published to (out) or received from (in) the bus. */
  countBus(direction: 'in' | 'out'): void {
    this.bus.set(direction, (this.bus.get(direction) ?? 0) + 1);
  }

  constructor(labels: { node: string }) {
    this.registry.setDefaultLabels(labels);
    collectDefaultMetrics({ register: this.registry });
    for (const bound of ['user', 'node']) this.rateLimitQueueFull.inc({ bound }, 0);
    for (const queue of ['early_frames', 'frames_waiting']) this.queueOverflows.inc({ queue }, 0);
    for (const code of Object.keys(ERROR_CODES)) this.errorFrames.inc({ code }, 0);
    for (const result of ['resumed', 'expired', 'forbidden', 'overflow', 'taken', 'unavailable']) this.resumes.inc({ result }, 0);
    for (const result of ['queued', 'overflow', 'gone']) this.keptMessages.inc({ result }, 0);
    for (const result of ['reclaimed', 'lost']) this.reclaims.inc({ result }, 0);
    this.draining.set(0);
  }

  /** Pre-creates the label sets of every known frame type so dashboards see zeros, not gaps. */
  initFrameTypes(received: readonly string[], sent: readonly string[]): void {
    // labels() alone does not create a series in prom-client; inc(0) and zero() do.
    for (const type of received) this.messagesReceived.inc({ type }, 0);
    for (const type of sent) this.messagesSent.inc({ type }, 0);
    this.busMessages.inc({ direction: 'in' }, 0);
    this.busMessages.inc({ direction: 'out' }, 0);
  }
}

/** Moves the counts gathered since the last scrape into the prom-client counter. */
function flushInto<L extends string>(counts: Map<string, number>, counter: Counter<L>, label: L): void {
  for (const [value, n] of counts) if (n > 0) counter.inc({ [label]: value } as Partial<Record<L, string>>, n);
  counts.clear();
}
