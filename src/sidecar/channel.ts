// One socket to /telephone/websocket and the channel joined on it: the
// Phoenix V2 framing, refs and replies, and the heartbeat. What the pushes
// mean is the relays' business; when to open another socket is the
// supervisor's (sidecar.ts).
//
//   connecting ──open──► joining ──phx_reply ok──► live ──socket closed──► closed
//        └──────── refused (HTTP status), unreachable, join error or timeout ──────► closed
//
// Every message the sidecar sends carries the join's ref as join_ref and a
// fresh ref from one counter (the server checks join_ref only on phx_join).
// A heartbeat that is still unanswered when the next is due means the socket
// is dead without having said so (a NAT dropped it, the node froze): it is
// terminated, which the supervisor treats like every other drop and reconnects.
import WebSocket from 'ws';
import type { Logger } from '../log/logger';
import { decodeTunnelFrame, type Extension } from '../protocol/tunnel-frames';
import { decodeJoinGrant, decodeReply, decodeServerPush, type JoinGrant, type Reply, type ServerPush } from '../protocol/tunnel-sidecar-frames';
import { decodeBinaryChunk, encodeBinaryChunk, streamEventPayload, type ChunkEvent } from '../protocol/tunnel-stream-frames';

export type ChannelStatus = 'connecting' | 'joining' | 'live' | 'closed';

/** What the relays need from the channel their requests came on. */
export interface ChannelSender {
  /** False when the socket is gone: the relays were (or are about to be) told to stop. */
  send(event: string, payload: object): boolean;
  /** A body chunk: a binary message with `binary_frames`, else a JSON frame. False like `send`. */
  sendChunk(chunk: ChunkEvent): boolean;
  readonly extensions: ReadonlySet<Extension>;
}

/** The socket could not be opened or joined; `status` is the HTTP status of a refused upgrade. */
export class ConnectError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'ConnectError';
  }
}

export interface ChannelOptions {
  /** The socket URL, token in its query: never logged. */
  url: string;
  topic: string;
  joinPayload: object;
  heartbeatIntervalMs: number;
  /** How long the upgrade and the join may take together. */
  joinTimeoutMs: number;
  logger: Logger;
  onPush(push: ServerPush): void;
  /** The socket closed after the join: not called for a failed connect (connect() rejects instead). */
  onClose(code: number, reason: string): void;
}

const NO_EXTENSIONS: ReadonlySet<Extension> = new Set();

export class TunnelChannel implements ChannelSender {
  private phase: ChannelStatus = 'connecting';
  private ws: WebSocket | undefined;
  /** The socket is corked until the end of this turn (corkForTurn). */
  private corked = false;
  private counter = 0;
  private joinRef = '';
  /**
   * Waiting replies by ref. Called synchronously as the reply is read: the join's must turn the
   * channel live before the next frame in the same read (a push right behind the reply) is looked at.
   */
  private readonly replies = new Map<string, { settle: (reply: Reply | Error) => void; timer: NodeJS.Timeout }>();
  private heartbeat: NodeJS.Timeout | undefined;
  private awaitingAck = false;
  private closedPromise: Promise<void> | undefined;
  grant: JoinGrant = { extensions: NO_EXTENSIONS, expiresIn: undefined };

  constructor(private readonly opts: ChannelOptions) {}

  get status(): ChannelStatus {
    return this.phase;
  }

  get extensions(): ReadonlySet<Extension> {
    return this.grant.extensions;
  }

  /** Opens the socket and joins; resolves with what the join granted, rejects with a ConnectError. */
  connect(): Promise<JoinGrant> {
    const { opts } = this;
    return new Promise<JoinGrant>((resolve, reject) => {
      let settled = false;
      const settle = (error: ConnectError | undefined) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error === undefined) return resolve(this.grant);
        reject(error);
        this.ws?.terminate();
      };
      const timer = setTimeout(() => settle(new ConnectError(`no join reply within ${opts.joinTimeoutMs} ms`)), opts.joinTimeoutMs);
      let ws: WebSocket;
      try {
        ws = new WebSocket(opts.url, { perMessageDeflate: false, handshakeTimeout: opts.joinTimeoutMs });
      } catch {
        // ws quotes the URL in its message, and the URL holds the token.
        this.phase = 'closed';
        return settle(new ConnectError('the socket URL is not valid'));
      }
      this.ws = ws;
      this.closedPromise = new Promise((closed) => ws.once('close', () => closed()));
      ws.on('unexpected-response', (req, res) => {
        res.resume();
        req.destroy();
        settle(new ConnectError(`the server refused the upgrade with HTTP ${res.statusCode ?? 0}`, res.statusCode));
      });
      ws.on('error', (error) => {
        if (!settled) settle(new ConnectError(error.message));
        else opts.logger.debug({ err: error.message }, 'tunnel socket error');
      });
      ws.on('open', () => {
        this.phase = 'joining';
        this.joinRef = this.nextRef();
        this.expect('phx_join', opts.joinPayload, opts.joinTimeoutMs, this.joinRef, (reply) => {
          if (reply instanceof Error) return settle(new ConnectError(reply.message));
          if (this.phase !== 'joining') return; // closed meanwhile: the close handler settled
          if (!reply.ok) return settle(new ConnectError(`the server refused the join: ${reply.reason}`));
          this.grant = decodeJoinGrant(reply.response);
          this.phase = 'live';
          this.startHeartbeat();
          settle(undefined);
        });
      });
      ws.on('message', (data: Buffer, isBinary: boolean) => this.receive(data, isBinary));
      ws.on('close', (code: number, reason: Buffer) => {
        const was = this.phase;
        this.phase = 'closed';
        clearInterval(this.heartbeat);
        for (const pending of this.replies.values()) {
          clearTimeout(pending.timer);
          pending.settle(new ConnectError(`the socket closed (${code})`));
        }
        this.replies.clear();
        if (!settled) return settle(new ConnectError(`the socket closed (${code}) before the join`));
        if (was === 'live') opts.onClose(code, reason.toString('utf8'));
      });
    });
  }

  send(event: string, payload: object): boolean {
    return this.sendRef(event, payload, this.nextRef());
  }

  /** Sends a message and resolves with its phx_reply; rejects on timeout or when the socket closes first. */
  request(event: string, payload: object, timeoutMs: number): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => this.expect(event, payload, timeoutMs, this.nextRef(), (reply) => (reply instanceof Error ? reject(reply) : resolve(reply))));
  }

  /** Sends a message; `settle` gets its phx_reply, or an error on timeout, a closed socket or a send that failed. */
  private expect(event: string, payload: object, timeoutMs: number, ref: string, settle: (reply: Reply | Error) => void): void {
    const timer = setTimeout(() => {
      this.replies.delete(ref);
      settle(new ConnectError(`no reply to ${event} within ${timeoutMs} ms`));
    }, timeoutMs);
    this.replies.set(ref, { settle, timer });
    if (!this.sendRef(event, payload, ref)) {
      clearTimeout(timer);
      this.replies.delete(ref);
      settle(new ConnectError(`the socket is closed; ${event} not sent`));
    }
  }

  /** Closes the socket (a normal close); resolves once it is closed, terminating it if the server does not answer within `graceMs`. */
  close(code = 1000, reason = '', graceMs = 2000): Promise<void> {
    const ws = this.ws;
    if (ws === undefined || this.closedPromise === undefined) return Promise.resolve();
    if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) ws.close(code, reason);
    const timer = setTimeout(() => ws.terminate(), graceMs);
    timer.unref();
    return this.closedPromise.finally(() => clearTimeout(timer));
  }

  sendChunk(chunk: ChunkEvent): boolean {
    if (!this.grant.extensions.has('binary_frames')) return this.send(chunk.event, streamEventPayload(chunk));
    const ws = this.ws;
    if (ws === undefined || ws.readyState !== WebSocket.OPEN) return false;
    this.corkForTurn(ws);
    ws.send(encodeBinaryChunk(chunk));
    return true;
  }

  private sendRef(event: string, payload: object, ref: string): boolean {
    const ws = this.ws;
    if (ws === undefined || ws.readyState !== WebSocket.OPEN) return false;
    this.corkForTurn(ws);
    ws.send(JSON.stringify([this.joinRef, ref, this.opts.topic, event, payload]));
    return true;
  }

  /**
   * The frames of one event-loop turn leave in one write: the TCP socket under ws is corked at the
   * first send of a turn and uncorked at its end (ws corks and uncorks around each frame itself;
   * the calls nest). One writev per answer was a quarter of the sidecar's CPU at 6,000 requests/s
   * (bench W6).
   */
  private corkForTurn(ws: WebSocket): void {
    if (this.corked) return;
    const socket = (ws as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
    if (socket === undefined) return;
    this.corked = true;
    socket.cork();
    setImmediate(() => {
      this.corked = false;
      socket.uncork();
    });
  }

  private nextRef(): string {
    return String(++this.counter);
  }

  private receive(data: Buffer, isBinary: boolean): void {
    if (isBinary) return this.receiveChunk(data);
    const frame = decodeTunnelFrame(data.toString('utf8'));
    if (frame === undefined) return void this.opts.logger.debug('ignored a frame that is not a Phoenix V2 message');
    if (frame.event === 'phx_reply') {
      const pending = frame.ref === null ? undefined : this.replies.get(frame.ref);
      if (pending === undefined) return;
      this.replies.delete(frame.ref as string);
      clearTimeout(pending.timer);
      return pending.settle(decodeReply(frame.payload));
    }
    if (frame.topic !== this.opts.topic) return;
    const push = decodeServerPush(frame.event, frame.payload);
    if (push === undefined) return void this.opts.logger.debug({ event: frame.event.slice(0, 32) }, 'ignored a push this sidecar does not understand');
    if (push.event === 'heartbeat_ack') {
      this.awaitingAck = false;
      return;
    }
    if (this.phase === 'live') this.opts.onPush(push);
  }

  /** A request body chunk in a binary message (`binary_frames`). ws gives each message a buffer of its own, so `data` may be kept. */
  private receiveChunk(data: Buffer): void {
    const chunk = this.grant.extensions.has('binary_frames') ? decodeBinaryChunk(data) : undefined;
    if (chunk?.event !== 'proxy_req_chunk') return void this.opts.logger.debug('ignored a binary message that is not a request body chunk');
    if (this.phase === 'live') this.opts.onPush({ ...chunk, event: chunk.event });
  }

  private startHeartbeat(): void {
    this.heartbeat = setInterval(() => {
      if (this.awaitingAck) {
        this.opts.logger.warn({ interval_ms: this.opts.heartbeatIntervalMs }, 'no heartbeat_ack within one interval: dropping the socket');
        this.ws?.terminate();
        return;
      }
      this.awaitingAck = this.send('heartbeat', { ts: Math.floor(Date.now() / 1000) });
    }, this.opts.heartbeatIntervalMs);
  }
}
