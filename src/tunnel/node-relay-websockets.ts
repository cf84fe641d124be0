// Relayed WebSockets between nodes (node-relay.ts carries HTTP): the pre-flight
// and the connection of a public WebSocket whose sidecar is on another node.
//
//   client's node                              sidecar's node
//   RemoteCheck      ──ws_check──────────────► serveCheck ──► sidecar ws_check
//                    ◄─ws_checked / ws_fail──
//   RemoteWebSocket  ──ws_open/ws_send/ws_close──► ServedWebSocket ──► sidecar
//                    ◄─ws_connected/ws_recv/ws_closed/ws_fail──
//
// A message that reaches no node means the other node is gone: the public
// socket closes 1001 (its sidecar's node died), or the sidecar's relay closes
// the back end (the client's node died).
import type { PublishWaiter } from '../bus/bus';
import type { RelayEnvelope } from '../protocol/relay-envelope';
import { WS_SIDECAR_TIMEOUT_MS, type RelayFailure, type TunnelTarget, type WsCheckResult, type WsFailure, type WsHead, type WsOpcode, type WsSink, type WsStream } from './exchange';
import { FAILURES, type RelayLink, type SentEntry, type ServedEntry } from './relay-link';
import type { TunnelRoute } from './registry';

/** The client's node waits this much longer than the sidecar's own check timeout: the sidecar's node answers first when it lives. */
const CHECK_MARGIN_MS = 1000;

export class RemoteCheck implements SentEntry {
  readonly result: Promise<WsCheckResult>;
  private resolve!: (result: WsCheckResult) => void;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly relay: RelayLink,
    readonly route: TunnelRoute,
    readonly pathId: string,
    private readonly head: WsHead,
  ) {
    this.result = new Promise((resolve) => (this.resolve = resolve));
    this.timer = setTimeout(() => this.settle({ ok: false, failure: 'tunnel_timeout' }), WS_SIDECAR_TIMEOUT_MS + CHECK_MARGIN_MS);
    const unreached: PublishWaiter = { published: (count) => (count === undefined || count === 0 ? this.settle({ ok: false, failure: 'gone' }) : undefined) };
    relay.send(route.node, { kind: 'ws_check', id: head.id, from: relay.nodeId, sidecar: route.sidecar, head: { ...head, headers: { ...head.headers } } }, unreached);
  }

  nodeGone(): void {
    this.settle({ ok: false, failure: 'tunnel_disconnected' });
  }

  fromSidecarNode(envelope: RelayEnvelope): void {
    if (envelope.kind === 'ws_checked') {
      const result: WsCheckResult = { ok: true, supported: envelope.supported };
      if (envelope.protocol !== undefined) result.protocol = envelope.protocol;
      if (envelope.reason !== undefined) result.reason = envelope.reason;
      this.settle(result);
    } else if (envelope.kind === 'ws_fail') this.settle({ ok: false, failure: FAILURES.has(envelope.failure) ? (envelope.failure as RelayFailure) : 'tunnel_error' });
  }

  private settle(result: WsCheckResult): void {
    clearTimeout(this.timer);
    this.relay.forgetSent(this.head.id);
    this.resolve(result);
  }
}

/** At the sidecar's node: runs another node's pre-flight on this node's sidecar and sends the answer back. */
export function serveCheck(relay: RelayLink, from: string, sidecar: TunnelTarget | undefined, head: WsHead): void {
  const answer = (envelope: RelayEnvelope) => relay.send(from, envelope, { published: () => undefined });
  if (sidecar === undefined) return answer({ kind: 'ws_fail', id: head.id, failure: 'gone' });
  void sidecar.checkWebSocket(head).then((result) =>
    answer(
      result.ok
        ? { kind: 'ws_checked', id: head.id, supported: result.supported, protocol: result.protocol, reason: result.reason }
        : { kind: 'ws_fail', id: head.id, failure: result.failure },
    ),
  );
}

/** At the client's node: a public WebSocket whose sidecar is on another node. */
export class RemoteWebSocket implements WsStream, SentEntry {
  private done = false;
  private readonly unreached: PublishWaiter = {
    published: (count) => {
      if ((count === undefined || count === 0) && !this.done) this.fail('tunnel_disconnected');
    },
  };

  constructor(
    private readonly relay: RelayLink,
    readonly route: TunnelRoute,
    readonly pathId: string,
    private readonly head: WsHead,
    private readonly sink: WsSink,
  ) {}

  nodeGone(): void {
    if (!this.done) this.fail('tunnel_disconnected');
  }

  open(): void {
    this.relay.send(this.route.node, { kind: 'ws_open', id: this.head.id, from: this.relay.nodeId, sidecar: this.route.sidecar, head: { ...this.head, headers: { ...this.head.headers } } }, this.unreached);
  }

  frame(opcode: WsOpcode, data: Buffer): void {
    if (!this.done) this.relay.send(this.route.node, { kind: 'ws_send', id: this.head.id, opcode, data }, this.unreached);
  }

  close(code: number, reason: string): void {
    if (this.done) return;
    this.relay.send(this.route.node, { kind: 'ws_close', id: this.head.id, code, reason }, { published: () => undefined });
    this.finish();
  }

  fromSidecarNode(envelope: RelayEnvelope): void {
    if (this.done) return;
    switch (envelope.kind) {
      case 'ws_connected':
        return this.sink.connected(envelope.protocol);
      case 'ws_recv':
        return this.sink.frame(envelope.opcode, envelope.data);
      case 'ws_closed':
        this.finish();
        return this.sink.closed(envelope.code, envelope.reason);
      case 'ws_fail':
        return this.fail(envelope.failure === 'gone' || envelope.failure === 'ws_error' ? envelope.failure : 'tunnel_disconnected');
      default:
        return;
    }
  }

  private fail(failure: WsFailure): void {
    this.finish();
    this.sink.failed(failure);
  }

  private finish(): void {
    this.done = true;
    this.relay.forgetSent(this.head.id);
  }
}

/** At the sidecar's node: another node's public WebSocket, and the sink that sends the sidecar's events back. */
export class ServedWebSocket implements WsSink, ServedEntry {
  stream: WsStream | undefined;
  private done = false;
  private readonly back: PublishWaiter = {
    // The client's node is gone: the back end connection closes.
    published: (count) => {
      if ((count === undefined || count === 0) && !this.done) {
        this.finish();
        this.stream?.close(1001, 'going_away');
      }
    },
  };

  constructor(
    private readonly relay: RelayLink,
    private readonly clientNode: string,
    private readonly id: string,
  ) {}

  fromClientNode(envelope: RelayEnvelope): void {
    const stream = this.stream;
    if (stream === undefined || this.done) return;
    if (envelope.kind === 'ws_send') stream.frame(envelope.opcode, envelope.data);
    else if (envelope.kind === 'ws_close') {
      this.finish();
      stream.close(envelope.code, envelope.reason);
    }
  }

  connected(protocol: string | undefined): void {
    this.toClientNode({ kind: 'ws_connected', id: this.id, protocol });
  }

  frame(opcode: WsOpcode, data: Buffer): void {
    this.toClientNode({ kind: 'ws_recv', id: this.id, opcode, data });
  }

  closed(code: number, reason: string): void {
    this.toClientNode({ kind: 'ws_closed', id: this.id, code, reason });
    this.finish();
  }

  failed(failure: WsFailure): void {
    this.toClientNode({ kind: 'ws_fail', id: this.id, failure });
    this.finish();
  }

  private toClientNode(envelope: RelayEnvelope): void {
    if (!this.done) this.relay.send(this.clientNode, envelope, this.back);
  }

  private finish(): void {
    this.done = true;
    this.relay.forgetServed(this.id);
  }
}
