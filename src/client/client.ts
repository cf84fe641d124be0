// SwitchboardClient: one logical connection to Switchboard that survives
// socket losses, node drains and token expiry (see index.ts for the API).
//
//   idle ──connect()──▶ connecting ──welcome──▶ open ──socket closed──▶ reconnecting ──timer──▶ connecting …
//                          │                     │                         │
//                          └───── close(), 4009, a token that cannot be renewed ─────▶ closed
//
// Every socket belongs to one `generation`; a handler or an awaited step (the
// token provider) that resumes under an older generation does nothing, so a
// late close or a late token never acts on a newer connection.
//
// Sessions (SPEC §3.9): a loss the application did not ask for (network,
// drain, slow consumer, expired token, …; close-policy.ts says which) keeps
// the last welcome's session, and every reconnect presents it as `?resume=`
// until a welcome answers. `resumed: true`: the server restored rooms and
// watches and replays what was missed, so the client restores nothing.
// `resumed: false`: a new session; the client rejoins and rewatches and
// emits `resume_failed`. close(), 4009 and the closes that end a session
// (1008, 4008) forget it: the next connect starts a new one.
import type { ErrorCode } from '../errors/codes';
import { Backoff } from './backoff';
import { closeAction, type CloseAction } from './close-policy';
import { TypedEmitter } from './emitter';
import { SwitchboardError } from './errors';
import { parseServerFrame, type Member, type PresenceStatus, type ServerFrame } from './frames';
import { resolveOptions, type ClientOptions, type ResolvedOptions } from './options';
import { clearTimer, setTimer, SOCKET_OPEN, type SocketLike, type TimerHandle } from './platform';
import { PendingRequests } from './requests';
import { Subscriptions } from './subscriptions';
import type { ClientEvents, ResumeFailureReason, SendResult, SignalType, Welcome } from './events';
import { refreshDelayMs, stillFresh, tokenExpiry, type TokenProvider } from './token';

export type ClientState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Client-side close code of a connection that stopped answering pings (4000–4999 is the application range). */
export const CLIENT_HEARTBEAT_TIMEOUT = { code: 4000, reason: 'heartbeat_timeout' } as const;

export class SwitchboardClient extends TypedEmitter<ClientEvents> {
  private readonly options: ResolvedOptions;
  private readonly backoff: Backoff;
  private readonly requests = new PendingRequests();
  private readonly subscriptions = new Subscriptions(
    (frame) => this.request(frame),
    (name, value) => this.emit(name, value),
  );

  private status: ClientState = 'idle';
  private generation = 0;
  private urlIndex = 0;
  private socket: SocketLike | undefined;
  private current: Welcome | undefined;
  /** The session to resume on the next connect: the last welcome's, until a close that ends it. */
  private sessionId: string | undefined;
  /** What the socket being opened presented as `?resume=`. */
  private resuming: string | undefined;
  private lastResumed = false;
  private token: string | undefined;
  /** When the draining node said it would close us (epoch ms). */
  private drainAt: number | undefined;
  /** The code of the last close, for `closed` when no new token comes after it. */
  private lastCloseCode = 1000;
  private readonly timers: { reconnect?: TimerHandle; heartbeat?: TimerHandle; refresh?: TimerHandle; stable?: TimerHandle } = {};

  constructor(options: ClientOptions) {
    super();
    this.options = resolveOptions(options);
    this.backoff = new Backoff(this.options.backoff);
  }

  get state(): ClientState {
    return this.status;
  }

  /** The welcome of the current connection; undefined unless `state` is `open`. */
  get welcome(): Welcome | undefined {
    return this.current;
  }

  /**
   * The session of the current connection; while reconnecting, the one the
   * client will ask to resume. Undefined before the first welcome, and after
   * a close that ended the session (`close()`, 4009, 1008, 4008).
   */
  get session(): string | undefined {
    return this.sessionId;
  }

  /** Whether the last welcome resumed the previous session (false on a first connect and after `resume_failed`). */
  get resumed(): boolean {
    return this.lastResumed;
  }

  /** The last status the server reported for a watched user. */
  presenceOf(user: string): PresenceStatus | undefined {
    return this.subscriptions.statusOf(user);
  }

  /** Starts connecting (again, after `close()`); resolves on the next welcome, rejects if the client closes first. */
  connect(): Promise<Welcome> {
    if (this.current !== undefined) return Promise.resolve(this.current);
    const welcomed = new Promise<Welcome>((resolve, reject) => {
      const offs = [
        this.once('connected', (welcome) => (offs.forEach((off) => off()), resolve(welcome))),
        this.once('closed', ({ code, reason }) => (offs.forEach((off) => off()), reject(new SwitchboardError('closed', `closed (${code} ${reason}) before a welcome`)))),
      ];
    });
    if (this.status === 'idle' || this.status === 'closed') {
      this.backoff.reset();
      void this.open(false);
    }
    return welcomed;
  }

  /** Closes for good (until `connect()`): no reconnect; waiting requests fail with `closed`. Code 1000 ends the session on the server: the next `connect()` starts a new one. */
  close(): void {
    if (this.status === 'closed' || this.status === 'idle') return;
    const socket = this.detachSocket();
    if (socket !== undefined) {
      socket.close(1000, 'client_closed');
      this.connectionLost(1000, 'client_closed', undefined);
    }
    this.finish(1000, 'client_closed');
  }

  // ── requests ──────────────────────────────────────────────────────────────

  /**
   * A signal to every device of `to` (or one): resolves on `ack` — with
   * `queued: true` when the recipient is away but resumable and the message
   * waits for it (SPEC §3.9) — rejects with `peer_offline`, another error,
   * `timeout` or `closed`.
   */
  async send(to: string, type: SignalType, payload?: unknown, options: { device?: string } = {}): Promise<SendResult> {
    const reply = await this.request({ type, to, ...(options.device === undefined ? {} : { device: options.device }), ...(payload === undefined ? {} : { payload }) });
    return { id: reply.id ?? '', queued: reply.type === 'ack' && reply.queued === true };
  }

  /** Joins a room (rejoined after every reconnect until `leave`); resolves with its members, this connection included. */
  join(room: string): Promise<Member[]> {
    return this.subscriptions.join(room);
  }

  leave(room: string): Promise<void> {
    return this.subscriptions.leave(room);
  }

  /** A message to the other members of a joined room; resolves once the server accepted it. */
  async publish(room: string, payload: unknown): Promise<void> {
    await this.request({ type: 'publish', room, payload });
  }

  /** Watches users (watched again after every reconnect until `unwatch`); resolves with their current status. */
  watch(users: readonly string[]): Promise<Record<string, PresenceStatus>> {
    return this.subscriptions.watch(users);
  }

  unwatch(users: readonly string[]): Promise<void> {
    return this.subscriptions.unwatch(users);
  }

  /** A one-off presence query (no watch). */
  presence(users: readonly string[]): Promise<Record<string, PresenceStatus>> {
    return this.subscriptions.presence(users);
  }

  private request(frame: { type: string } & Record<string, unknown>): Promise<ServerFrame> {
    const socket = this.socket;
    if (this.status !== 'open' || socket === undefined || socket.readyState !== SOCKET_OPEN)
      return Promise.reject(new SwitchboardError('not_connected', `cannot send ${frame.type}: not connected (${this.status})`));
    const id = this.requests.nextId();
    const answer = this.requests.wait(id, this.options.sendTimeoutMs);
    socket.send(JSON.stringify({ ...frame, id }));
    return answer;
  }

  // ── connection lifecycle ──────────────────────────────────────────────────

  private async open(newToken: boolean): Promise<void> {
    const generation = ++this.generation;
    this.status = 'connecting';
    let token: string | undefined;
    try {
      token = await this.obtainToken(newToken);
    } catch (error) {
      if (generation !== this.generation) return;
      this.emit('error', error instanceof SwitchboardError ? error : new SwitchboardError('token_provider', `the token provider failed: ${String(error)}`));
      return this.scheduleReconnect(this.backoff.next(), newToken);
    }
    if (generation !== this.generation) return; // closed, or replaced by another attempt, while the provider ran
    if (token === undefined) return this.finish(this.lastCloseCode, 'token_not_renewed');
    const url = this.options.urls[this.urlIndex % this.options.urls.length] ?? '';
    this.emit('connecting', { url });
    this.resuming = this.sessionId;
    const resume = this.resuming === undefined ? '' : `&resume=${encodeURIComponent(this.resuming)}`;
    const socket = new this.options.WebSocket(`${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}${resume}`);
    this.socket = socket;
    socket.onmessage = (event: { data?: unknown }) => {
      if (socket === this.socket) this.receive(event.data);
    };
    socket.onclose = (event: { code?: unknown; reason?: unknown }) => {
      if (socket !== this.socket) return;
      this.detachSocket();
      this.socketClosed(typeof event.code === 'number' ? event.code : 1006, typeof event.reason === 'string' ? event.reason : '');
    };
    socket.onerror = () => undefined; // a close event always follows, and carries the code
  }

  /**
   * The token to connect with; undefined when none can be had: a fixed token
   * that was refused, or a provider that hands back the token just refused.
   */
  private async obtainToken(newToken: boolean): Promise<string | undefined> {
    const { token: source, device } = this.options;
    if (typeof source === 'string') return newToken ? undefined : source;
    if (!newToken && this.token !== undefined && stillFresh(this.token, Date.now(), this.options.refreshMarginMs)) return this.token;
    const refused = newToken ? this.token : undefined;
    const reason = newToken ? 'rejected' : this.token === undefined ? 'connect' : 'expiring';
    const token: unknown = await source({ reason, device });
    if (typeof token !== 'string' || token === '') throw new SwitchboardError('token_provider', 'the token provider returned no token');
    if (token === refused) return undefined;
    this.token = token;
    return token;
  }

  private receive(data: unknown): void {
    const frame = parseServerFrame(data);
    if (frame === undefined) return this.emit('error', new SwitchboardError('bad_frame', `unreadable frame from the server: ${String(data).slice(0, 200)}`));
    if (this.requests.settle(frame)) return;
    switch (frame.type) {
      case 'welcome':
        return this.welcomed(frame);
      case 'offer':
      case 'answer':
      case 'candidate':
      case 'bye':
      case 'message':
        if (frame.room !== undefined) return this.emit('room_message', { room: frame.room, from: frame.from, fromDevice: frame.from_device, payload: frame.payload });
        return this.emit('signal', { type: frame.type, from: frame.from, fromDevice: frame.from_device, payload: frame.payload });
      case 'member_joined':
      case 'member_left':
        return this.emit(frame.type, { room: frame.room, user: frame.user, device: frame.device });
      case 'presence':
        if (frame.user !== undefined) this.subscriptions.observe(frame.user, frame.status, false);
        return;
      case 'error':
        return this.emit('error', new SwitchboardError(frame.code as ErrorCode, frame.message, frame.id, frame.retry_after_ms));
      case 'draining':
        this.drainAt = Date.now() + frame.reconnect_after_ms;
        return this.emit('draining', { reconnectAfterMs: frame.reconnect_after_ms });
      case 'event':
        return this.emit('event', { event: frame.event, payload: frame.payload });
      default:
        return; // an answer that came after its request timed out
    }
  }

  private welcomed(frame: Extract<ServerFrame, { type: 'welcome' }>): void {
    const welcome: Welcome = { user: frame.user, device: frame.device, session: frame.session, node: frame.node, heartbeatMs: frame.heartbeat_ms, resumed: frame.resumed === true };
    const asked = this.resuming;
    this.resuming = undefined;
    this.current = welcome;
    this.sessionId = welcome.session;
    this.lastResumed = welcome.resumed;
    this.status = 'open';
    this.drainAt = undefined;
    this.timers.stable = setTimer(() => this.backoff.reset(), this.options.backoff.resetAfterMs);
    this.scheduleHeartbeat(welcome.heartbeatMs);
    this.scheduleRefresh(this.token);
    this.emit('connected', welcome);
    const generation = this.generation;
    const current = () => generation === this.generation;
    if (!current()) return; // a listener closed the client
    if (welcome.resumed) return this.subscriptions.resumed(current);
    if (asked !== undefined) {
      // A server that does not resume at all answers with no reason.
      const reason: ResumeFailureReason = frame.reason ?? 'unavailable';
      this.emit('resume_failed', { session: asked, reason });
      if (!current()) return;
    }
    this.subscriptions.restore(current);
  }

  private socketClosed(code: number, reason: string): void {
    this.lastCloseCode = code;
    const action = closeAction(code);
    const stop = action.kind === 'stop' || (action.newToken && typeof this.options.token === 'string');
    if (action.kind === 'stop' || !action.resume) this.sessionId = undefined;
    const delay = stop ? undefined : this.delayFor(action);
    this.connectionLost(code, reason, delay);
    if (delay === undefined || action.kind === 'stop') return this.finish(code, reason);
    this.urlIndex = (this.urlIndex + 1) % this.options.urls.length;
    this.scheduleReconnect(delay, action.newToken);
  }

  private delayFor(action: Extract<CloseAction, { kind: 'reconnect' }>): number {
    const { initialMs, jitter } = this.options.backoff;
    const soon = initialMs * jitter * Math.random();
    if (action.wait === 'backoff') return this.backoff.next();
    if (action.wait === 'soon') return soon;
    return Math.max(0, (this.drainAt ?? 0) - Date.now()) + soon;
  }

  /** What every end of a connection does: timers of the connection off, waiting requests failed, `disconnected`. */
  private connectionLost(code: number, reason: string, reconnectInMs: number | undefined): void {
    for (const name of ['heartbeat', 'refresh', 'stable', 'reconnect'] as const) {
      clearTimer(this.timers[name]);
      delete this.timers[name];
    }
    this.current = undefined;
    this.generation++; // what still waits for this connection (heartbeat, rejoin, refresh) now sees it gone
    this.requests.failAll('closed', `the connection closed (${code} ${reason}) before an answer`);
    this.emit('disconnected', { code, reason, reconnectInMs });
  }

  private scheduleReconnect(delayMs: number, newToken: boolean): void {
    this.status = 'reconnecting';
    this.timers.reconnect = setTimer(() => void this.open(newToken), delayMs);
  }

  private finish(code: number, reason: string): void {
    this.generation++;
    this.status = 'closed';
    this.sessionId = undefined; // ended (1000, 4009) or never to be resumed by this client: the next connect() starts a new session
    clearTimer(this.timers.reconnect);
    delete this.timers.reconnect;
    this.emit('closed', { code, reason });
  }

  /** Takes the socket out of the client: its later events are ignored. */
  private detachSocket(): SocketLike | undefined {
    const socket = this.socket;
    this.socket = undefined;
    if (socket !== undefined) socket.onmessage = socket.onclose = null;
    return socket;
  }

  // ── keep-alive and token refresh ──────────────────────────────────────────

  /** An application ping every heartbeat: a connection that stopped answering is dropped and replaced. */
  private scheduleHeartbeat(intervalMs: number): void {
    const generation = this.generation;
    this.timers.heartbeat = setTimer(() => {
      this.request({ type: 'ping' }).then(
        () => generation === this.generation && this.scheduleHeartbeat(intervalMs),
        (error: SwitchboardError) => {
          if (generation !== this.generation || error.code !== 'timeout') return;
          const socket = this.detachSocket();
          socket?.close(CLIENT_HEARTBEAT_TIMEOUT.code, CLIENT_HEARTBEAT_TIMEOUT.reason);
          this.socketClosed(CLIENT_HEARTBEAT_TIMEOUT.code, CLIENT_HEARTBEAT_TIMEOUT.reason);
        },
      );
    }, Math.max(1000, intervalMs));
  }

  private scheduleRefresh(token: string | undefined): void {
    const exp = token === undefined ? undefined : tokenExpiry(token);
    if (exp === undefined || typeof this.options.token === 'string') return;
    const provider = this.options.token;
    const generation = this.generation;
    this.timers.refresh = setTimer(() => void this.refresh(provider, generation), refreshDelayMs(exp, Date.now(), this.options.refreshMarginMs));
  }

  /**
   * In-band refresh (SPEC §3.5). A failure is reported (`error`) and not
   * retried: if the token then expires, the server closes with 4001 and the
   * reconnect asks the provider again.
   */
  private async refresh(provider: TokenProvider, generation: number): Promise<void> {
    try {
      const token: unknown = await provider({ reason: 'expiring', device: this.options.device });
      if (typeof token !== 'string' || token === '') throw new SwitchboardError('token_provider', 'the token provider returned no token');
      if (generation !== this.generation) return; // that connection is gone; the next one got its own token
      const reply = await this.request({ type: 'refresh', token });
      if (generation !== this.generation || reply.type !== 'refreshed') return;
      this.token = token;
      this.emit('token_refreshed', { exp: reply.exp });
      this.scheduleRefresh(token);
    } catch (error) {
      if (generation !== this.generation) return;
      this.emit('error', error instanceof SwitchboardError ? error : new SwitchboardError('token_provider', `the token provider failed: ${String(error)}`));
    }
  }
}
