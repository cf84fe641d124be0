// The public WebSockets relayed through one sidecar (TUNNEL-PROTOCOL.md §7):
// its pending pre-flights (ws_check) and its open connections, keyed by the
// ids the server chose. The sidecar's events find their connection here; the
// sidecar going away fails the checks and closes the connections (1001).
import type { Payload } from '../protocol/tunnel-frames';
import { decodeWsCheckResult, decodeWsEvent, encodeWsClose, encodeWsFrame, encodeWsOpen } from '../protocol/tunnel-frames';
import { WS_SIDECAR_TIMEOUT_MS, type WsCheckResult, type WsHead, type WsOpcode, type WsSink, type WsStream } from './exchange';

export const WS_EVENTS: ReadonlySet<string> = new Set(['ws_check_result', 'ws_connected', 'ws_frame', 'ws_closed', 'ws_error']);

export class SidecarWebSockets {
  private readonly checks = new Map<string, { resolve: (result: WsCheckResult) => void; timer: NodeJS.Timeout }>();
  private readonly sockets = new Map<string, WsSink>();

  /** `channel`: the sidecar's socket, and the join_ref and path_id its pushes carry (the codec's encoders write the captured bytes). */
  constructor(private readonly channel: { send(frame: string): void; readonly joinRef: string; readonly pathId: string }) {}

  get count(): number {
    return this.sockets.size;
  }

  check(head: WsHead): Promise<WsCheckResult> {
    return new Promise((resolve) => {
      // The sidecar has WS_SIDECAR_TIMEOUT_MS to answer; then the entry goes, whoever still waits.
      const timer = setTimeout(() => this.settle(head.id, { ok: false, failure: 'tunnel_timeout' }), WS_SIDECAR_TIMEOUT_MS);
      this.checks.set(head.id, { resolve, timer });
      this.channel.send(encodeWsOpen(this.channel.joinRef, this.channel.pathId, 'ws_check', head));
    });
  }

  connect(head: WsHead, sink: WsSink): WsStream {
    const id = head.id;
    this.sockets.set(id, sink);
    this.channel.send(encodeWsOpen(this.channel.joinRef, this.channel.pathId, 'ws_connect', head));
    return {
      frame: (opcode: WsOpcode, data: Buffer) => {
        if (this.sockets.has(id)) this.channel.send(encodeWsFrame(this.channel.joinRef, this.channel.pathId, id, opcode, data));
      },
      close: (code: number, reason: string) => {
        if (this.sockets.delete(id)) this.channel.send(encodeWsClose(this.channel.joinRef, this.channel.pathId, id, code, reason));
      },
    };
  }

  /** An event from the sidecar about a check or a connection; unknown ids are ignored. */
  onEvent(event: string, payload: Payload): void {
    if (event === 'ws_check_result') {
      const result = decodeWsCheckResult(payload);
      if (result === undefined) return;
      const answer: WsCheckResult = { ok: true, supported: result.supported };
      if (result.protocol !== undefined) answer.protocol = result.protocol;
      if (result.reason !== undefined) answer.reason = result.reason;
      return this.settle(result.checkId, answer);
    }
    const decoded = decodeWsEvent(event, payload);
    if (decoded === undefined) return;
    const sink = this.sockets.get(decoded.connectionId);
    if (sink === undefined) return;
    switch (decoded.event) {
      case 'ws_connected':
        return sink.connected(decoded.protocol);
      case 'ws_frame':
        return sink.frame(decoded.opcode, decoded.data);
      case 'ws_closed':
        this.sockets.delete(decoded.connectionId);
        return sink.closed(decoded.code, decoded.reason);
      case 'ws_error':
        this.sockets.delete(decoded.connectionId);
        return sink.failed('ws_error');
    }
  }

  /** The sidecar's socket closed: checks fail, relayed connections close (1001). */
  /** The socket closed; `handedOver` as for SidecarRequest.onSidecarGone: unanswered pre-flights may go elsewhere. */
  gone(handedOver = false): void {
    for (const id of [...this.checks.keys()]) this.settle(id, { ok: false, failure: handedOver ? 'gone' : 'tunnel_disconnected' });
    const sinks = [...this.sockets.values()];
    this.sockets.clear();
    for (const sink of sinks) sink.failed('tunnel_disconnected');
  }

  private settle(id: string, result: WsCheckResult): void {
    const check = this.checks.get(id);
    if (check === undefined) return;
    this.checks.delete(id);
    clearTimeout(check.timer);
    check.resolve(result);
  }
}
