// Requests between nodes: a public request that lands on a node without the
// sidecar travels over the bus to the node that has it, and the answer comes
// back the same way (SPEC §5, TUNNEL-PROTOCOL.md §8).
//
//   client's node                          sidecar's node
//   RemoteRequest ──open/body/credit/cancel──► t:<sidecar node> ──► ServedRequest ──► SidecarSession
//   ResponseSink  ◄──start/data/end/fail────── t:<client node>  ◄──
//
// Each node subscribes its own channel t:<node> once. Messages of one request
// keep their order (one publisher, one channel: bus.ts), and the bus batches a
// turn's messages per channel like signals. Credit crosses too: the sidecar's
// node passes on only what the client's node granted, so neither node holds
// more than a window of a request. A publish that reaches no node means the
// other node is gone: an `open` then fails as `gone` (the request tries another
// sidecar), anything later as `tunnel_disconnected` (or, the other way, a cancel).
// A node that dies (kill -9) answers nothing more: every sweepMs the client's
// node asks the registry whether the sidecars it waits on are still there, and
// fails what waits on one that is not (the dead node's lease expired), so a
// request in flight ends with 502 within PRESENCE_TTL_MS instead of a timeout.
import { channels, type Bus, type PublishWaiter } from '../bus/bus';
import type { Logger } from '../log/logger';
import type { Metrics } from '../metrics/metrics';
import { decodeRelayEnvelope, encodeRelayEnvelope, type RelayEnvelope } from '../protocol/relay-envelope';
import type { TunnelDirectory } from './directory';
import type { RelayFailure, RelayHead, RequestStream, ResponseSink, TunnelTarget, WsHead } from './exchange';
import { RemoteCheck, RemoteWebSocket, serveCheck, ServedWebSocket } from './node-relay-websockets';
import { FAILURES, type RelayLink, type SentEntry, type ServedEntry } from './relay-link';
import type { TunnelRegistry, TunnelRoute } from './registry';

/** Envelope kinds that go to the sidecar's node (the rest go back to the client's node). */
const TO_SIDECAR_NODE: ReadonlySet<string> = new Set(['body', 'body_end', 'credit', 'cancel', 'ws_send', 'ws_close']);

export interface NodeRelayDeps {
  nodeId: string;
  bus: Bus;
  registry: TunnelRegistry;
  /** How often waits on other nodes' sidecars are checked against the registry. */
  sweepMs: number;
  logger: Logger;
  metrics: Metrics;
}


export class NodeRelay implements RelayLink {
  private readonly channel: string;
  /** Requests, checks and WebSockets this node sent to other nodes' sidecars (it holds the public client), by id. */
  private readonly sent = new Map<string, SentEntry>();
  /** Those other nodes sent to this node's sidecars. */
  private readonly served = new Map<string, ServedEntry>();
  private directory: TunnelDirectory | undefined;
  readonly nodeId: string;

  constructor(private readonly deps: NodeRelayDeps) {
    this.nodeId = deps.nodeId;
    this.channel = channels.tunnel(deps.nodeId);
  }

  private sweeper: NodeJS.Timeout | undefined;

  /** Starts serving other nodes' requests for this node's sidecars, and sweeping this node's waits. */
  async start(directory: TunnelDirectory): Promise<void> {
    this.directory = directory;
    await this.deps.bus.subscribe(this.channel, this.onMessage);
    this.sweeper = setInterval(() => void this.sweep(), this.deps.sweepMs);
    this.sweeper.unref();
  }

  stop(): void {
    clearInterval(this.sweeper);
  }

  /** Fails what waits on a sidecar the registry no longer lists (its node died). One registry read per path. */
  private async sweep(): Promise<void> {
    const byPath = new Map<string, SentEntry[]>();
    for (const entry of this.sent.values()) {
      const list = byPath.get(entry.pathId);
      if (list === undefined) byPath.set(entry.pathId, [entry]);
      else list.push(entry);
    }
    for (const [pathId, entries] of byPath) {
      let live: Set<string>;
      try {
        live = new Set((await this.deps.registry.routes(pathId)).map((route) => route.sidecar));
      } catch {
        return; // Redis down: nothing can be judged now; the next sweep tries again
      }
      for (const entry of entries) if (!live.has(entry.route.sidecar)) entry.nodeGone();
    }
  }

  /** The target that sends requests to a sidecar on another node. */
  target(route: TunnelRoute, pathId: string): TunnelTarget {
    return {
      key: `${route.node}/${route.sidecar}`,
      request: (head, sink) => {
        const request = new RemoteRequest(this, route, pathId, head, sink);
        this.sent.set(head.id, request);
        request.open();
        return request;
      },
      checkWebSocket: (head) => {
        const check = new RemoteCheck(this, route, pathId, head);
        this.sent.set(head.id, check);
        return check.result;
      },
      connectWebSocket: (head, sink) => {
        const socket = new RemoteWebSocket(this, route, pathId, head, sink);
        this.sent.set(head.id, socket);
        socket.open();
        return socket;
      },
    };
  }

  send(node: string, envelope: RelayEnvelope, waiter: PublishWaiter): void {
    this.deps.metrics.countBus('out');
    this.deps.bus.publishThen(channels.tunnel(node), encodeRelayEnvelope(envelope), waiter);
  }

  forgetSent(id: string): void {
    this.sent.delete(id);
  }

  forgetServed(id: string): void {
    this.served.delete(id);
  }

  private readonly onMessage = (message: string): void => {
    this.deps.metrics.countBus('in');
    const envelope = decodeRelayEnvelope(message);
    if (envelope === undefined) return void this.deps.logger.warn('ignored a malformed relay envelope');
    switch (envelope.kind) {
      case 'open':
        return this.serve(envelope.from, envelope.sidecar, envelope.head);
      case 'ws_check':
        return serveCheck(this, envelope.from, this.liveSidecar(envelope.sidecar), envelope.head);
      case 'ws_open':
        return this.serveWebSocket(envelope.from, envelope.sidecar, envelope.head);
      default:
        if (TO_SIDECAR_NODE.has(envelope.kind)) return this.served.get(envelope.id)?.fromClientNode(envelope);
        return this.sent.get(envelope.id)?.fromSidecarNode(envelope);
    }
  };

  /**
   * This node's sidecar by id; undefined when it left (the route was stale: the client's node tries
   * another). A draining sidecar still serves: its replacement may not have joined yet, and it
   * closes once nothing is in flight on it.
   */
  private liveSidecar(id: string): TunnelTarget | undefined {
    return this.directory?.sidecar(id);
  }

  private serveWebSocket(from: string, sidecarId: string, head: WsHead): void {
    const served = new ServedWebSocket(this, from, head.id);
    const sidecar = this.liveSidecar(sidecarId);
    if (sidecar === undefined) return served.failed('gone');
    this.served.set(head.id, served);
    served.stream = sidecar.connectWebSocket(head, served);
  }

  /** Another node's request for one of this node's sidecars. */
  private serve(from: string, sidecarId: string, head: RelayHead): void {
    const sidecar = this.liveSidecar(sidecarId);
    const served = new ServedRequest(this, from, head.id);
    if (sidecar === undefined) return served.fail('gone');
    this.served.set(head.id, served);
    served.stream = sidecar.request(head, served);
  }
}

/** At the client's node: the request as sent to a sidecar on another node. */
class RemoteRequest implements RequestStream, SentEntry {
  private done = false;

  constructor(
    private readonly relay: NodeRelay,
    readonly route: TunnelRoute,
    readonly pathId: string,
    private readonly head: RelayHead,
    private readonly sink: ResponseSink,
  ) {}

  nodeGone(): void {
    if (this.done) return;
    this.finish();
    this.sink.fail('tunnel_disconnected');
  }

  open(): void {
    // Nobody on the channel: the node is gone, and the request may try another sidecar.
    this.relay.send(this.route.node, { kind: 'open', id: this.head.id, from: this.relay.nodeId, sidecar: this.route.sidecar, head: this.head }, this.unreached('gone'));
  }

  body(chunk: Buffer): void {
    this.toSidecarNode({ kind: 'body', id: this.head.id, data: chunk });
  }

  bodyEnd(): void {
    this.toSidecarNode({ kind: 'body_end', id: this.head.id });
  }

  credit(bytes: number): void {
    this.toSidecarNode({ kind: 'credit', id: this.head.id, bytes });
  }

  cancel(): void {
    if (this.done) return;
    this.toSidecarNode({ kind: 'cancel', id: this.head.id });
    this.finish();
  }

  fromSidecarNode(envelope: RelayEnvelope): void {
    if (this.done) return;
    switch (envelope.kind) {
      case 'body_credit':
        return this.sink.bodyCredit(envelope.bytes);
      case 'start':
        return this.sink.start(envelope.status, envelope.headers, envelope.contentLength);
      case 'data':
        return this.sink.data(envelope.data);
      case 'end':
        this.finish();
        return this.sink.end();
      case 'fail':
        this.finish();
        return this.sink.fail(FAILURES.has(envelope.failure) ? (envelope.failure as RelayFailure) : 'tunnel_error');
      default:
        return;
    }
  }

  private toSidecarNode(envelope: RelayEnvelope): void {
    if (!this.done) this.relay.send(this.route.node, envelope, this.unreached('tunnel_disconnected'));
  }

  /** A waiter that fails the request when the message reached no node (or the bus failed). */
  private unreached(failure: RelayFailure): PublishWaiter {
    return {
      published: (count) => {
        if (count !== undefined && count > 0) return;
        if (this.done) return;
        this.finish();
        this.sink.fail(failure);
      },
    };
  }

  private finish(): void {
    this.done = true;
    this.relay.forgetSent(this.head.id);
  }
}

/** At the sidecar's node: another node's request, and the sink that sends the answer back. */
class ServedRequest implements ResponseSink, ServedEntry {
  stream: RequestStream | undefined;
  private done = false;
  private readonly back: PublishWaiter = {
    // The client's node is gone: nobody waits for the answer any more.
    published: (count) => {
      if (count === undefined || count === 0) this.cancel();
    },
  };

  constructor(
    private readonly relay: NodeRelay,
    private readonly clientNode: string,
    private readonly id: string,
  ) {}

  fromClientNode(envelope: RelayEnvelope): void {
    const stream = this.stream;
    if (stream === undefined || this.done) return;
    switch (envelope.kind) {
      case 'body':
        return stream.body(envelope.data);
      case 'body_end':
        return stream.bodyEnd();
      case 'credit':
        return stream.credit(envelope.bytes);
      case 'cancel':
        return this.cancel();
      default:
        return;
    }
  }

  bodyCredit(bytes: number): void {
    this.toClientNode({ kind: 'body_credit', id: this.id, bytes });
  }

  start(status: number, headers: [string, string][], contentLength: number | undefined): void {
    this.toClientNode({ kind: 'start', id: this.id, status, headers, contentLength });
  }

  data(chunk: Buffer): void {
    this.toClientNode({ kind: 'data', id: this.id, data: chunk });
  }

  end(): void {
    this.toClientNode({ kind: 'end', id: this.id });
    this.finish();
  }

  fail(failure: RelayFailure): void {
    this.toClientNode({ kind: 'fail', id: this.id, failure });
    this.finish();
  }

  private cancel(): void {
    if (this.done) return;
    this.finish();
    this.stream?.cancel();
  }

  private toClientNode(envelope: RelayEnvelope): void {
    if (!this.done) this.relay.send(this.clientNode, envelope, this.back);
  }

  private finish(): void {
    this.done = true;
    this.relay.forgetServed(this.id);
  }
}

