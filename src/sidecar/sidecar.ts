// `switchboard tunnel`'s supervisor: keeps one joined tunnel socket (a
// "link") serving, replaces it when it drops or its node drains, and keeps
// the token fresh. Each link has its own relays, so a request is answered on
// the socket it came on.
//
//   idle ──start()──► running ──stop()──► stopped
//                        │  (403 at the very first connect: start() rejects, stopped)
//
//   link: serving ──draining push──► draining ──(new link live, old one idle)──► closed by us
//            └──────────socket dropped──► gone: abort its work, reconnect (backoff)
//
// Make-before-break: on `draining` the old link keeps serving while a new
// socket connects and joins (the load balancer sends it to a node that is not
// draining); only once the new link is live does the old one stop being the
// active link, and it is closed when its last request or WebSocket ends (or
// when the server closes it with 1012, whichever is first). A socket that
// closes with 1012 without a draining push first is replaced at once, without
// backoff: the node asked for it.
import { Pool } from 'undici';
import type { Logger } from '../log/logger';
import { channelTopic, EXTENSIONS } from '../protocol/tunnel-frames';
import { decodeRefreshed, type JoinGrant, type ServerPush } from '../protocol/tunnel-sidecar-frames';
import { backoffDelayMs, DEFAULT_BACKOFF, type BackoffPolicy } from './backoff';
import { ConnectError, TunnelChannel } from './channel';
import { HttpRelay } from './http-relay';
import { loggableServer, socketUrl } from './options';
import { readTunnelToken, refreshDelayMs, type TokenFacts } from './token';
import { WsRelay } from './ws-relay';

export interface SidecarSettings {
  server: URL;
  token: string;
  tokenFacts: TokenFacts;
  to: URL;
  heartbeatIntervalMs: number;
}

export interface SidecarDeps {
  settings: SidecarSettings;
  logger: Logger;
  backoff?: BackoffPolicy;
  /** Upgrade plus join; a reply later than this is a failed attempt. */
  joinTimeoutMs?: number;
  /** After a failed refresh, the next try. */
  refreshRetryMs?: number;
  random?: () => number;
}

/** The server refused the token at the first connect (HTTP 401/403): the CLI exits 1. */
export class TokenRefusedError extends Error {
  constructor(readonly status: number) {
    super(`the server refused the token (HTTP ${status}): check --token / SWITCHBOARD_TOKEN, or mint one with \`switchboard token --tunnel PATH_ID\``);
    this.name = 'TokenRefusedError';
  }
}

interface Link {
  readonly id: number;
  readonly channel: TunnelChannel;
  readonly http: HttpRelay;
  readonly ws: WsRelay;
  state: 'serving' | 'draining' | 'retiring' | 'gone';
}

const REFUSED = new Set([401, 403]);
/** Below the server's 5 s for ws_check_result and ws_connected. */
const WS_HANDSHAKE_TIMEOUT_MS = 4500;

export class Sidecar {
  private status: 'idle' | 'running' | 'stopped' = 'idle';
  private token: string;
  private facts: TokenFacts;
  private active: Link | undefined;
  private readonly draining = new Set<Link>();
  private connecting = false;
  /** The link being connected, so that stop() can cut its handshake short. */
  private dialing: Link | undefined;
  private everLive = false;
  private nextLinkId = 1;
  private retry: { timer: NodeJS.Timeout; resolve: () => void } | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  private firstLive: { resolve: () => void; reject: (error: Error) => void } | undefined;
  private readonly pool: Pool;
  private readonly log: Logger;

  constructor(private readonly deps: SidecarDeps) {
    this.token = deps.settings.token;
    this.facts = deps.settings.tokenFacts;
    this.pool = new Pool(deps.settings.to.origin);
    this.log = deps.logger.child({ tunnel: this.facts.pathId });
  }

  /** The token new sockets use (the refreshed one once refreshed). */
  get currentToken(): string {
    return this.token;
  }

  /** For tests and health: the active link's id and how many old links still finish their work. */
  get links(): { active: number | undefined; draining: number } {
    return { active: this.active?.id, draining: this.draining.size };
  }

  /** Resolves once the first socket is joined; rejects with TokenRefusedError when the server refuses the token then. */
  start(): Promise<void> {
    if (this.status !== 'idle') throw new Error('a sidecar starts once');
    this.status = 'running';
    return new Promise<void>((resolve, reject) => {
      this.firstLive = { resolve, reject };
      void this.connectLoop(0);
    });
  }

  /** Closes every socket and back-end connection; in-flight requests are abandoned (the server answers them 502). */
  async stop(): Promise<void> {
    if (this.status === 'stopped') return;
    this.status = 'stopped';
    clearTimeout(this.refreshTimer);
    this.cancelRetry();
    void this.dialing?.channel.close(1000, 'sidecar stopping');
    const links = [...this.draining, ...(this.active === undefined ? [] : [this.active])];
    this.active = undefined;
    this.draining.clear();
    await Promise.all(links.map((link) => this.retire(link, 1000, 'sidecar stopping')));
    await this.pool.destroy();
  }

  /** Connects until a link is live, the sidecar stops, or (first connect only) the token is refused. */
  private async connectLoop(firstDelayMs: number | undefined): Promise<void> {
    if (this.connecting) return;
    this.connecting = true;
    try {
      for (let attempt = 0; this.status === 'running'; attempt++) {
        const delay = attempt === 0 ? firstDelayMs : backoffDelayMs(attempt - 1, this.deps.backoff ?? DEFAULT_BACKOFF, this.deps.random);
        if (delay !== undefined && delay > 0) await this.wait(delay);
        if (this.status !== 'running') return;
        const link = this.newLink();
        this.dialing = link;
        try {
          const grant = await link.channel.connect();
          if (this.status !== 'running') return void (await this.retire(link, 1000, 'sidecar stopping'));
          if (link.channel.status !== 'live') throw new ConnectError('the socket closed right after the join');
          return this.promote(link, grant);
        } catch (error) {
          const status = error instanceof ConnectError ? error.status : undefined;
          if (status !== undefined && REFUSED.has(status) && !this.everLive) return this.refusedAtStart(status);
          if (this.status !== 'running') return;
          this.log.warn({ attempt, err: error instanceof Error ? error.message : String(error) }, 'tunnel connect failed; retrying');
        } finally {
          this.dialing = undefined;
        }
      }
    } finally {
      this.connecting = false;
    }
  }

  private newLink(): Link {
    const id = this.nextLinkId++;
    const { settings } = this.deps;
    const log = this.log.child({ link: id });
    const onSettled = () => this.settled(link);
    const channel: TunnelChannel = new TunnelChannel({
      url: socketUrl(settings.server, this.token),
      topic: channelTopic(this.facts.pathId),
      joinPayload: { extensions: EXTENSIONS },
      heartbeatIntervalMs: settings.heartbeatIntervalMs,
      joinTimeoutMs: this.deps.joinTimeoutMs ?? 10_000,
      logger: log,
      onPush: (push) => this.dispatch(link, push),
      onClose: (code, reason) => this.closed(link, code, reason),
    });
    const backendWs = new URL(settings.to.href);
    backendWs.protocol = settings.to.protocol === 'https:' ? 'wss:' : 'ws:';
    const link: Link = {
      id,
      channel,
      http: new HttpRelay({ backend: { dispatcher: this.pool, basePath: settings.to.pathname.replace(/\/+$/, '') }, channel, logger: log, onSettled }),
      ws: new WsRelay({ backendUrl: backendWs, channel, logger: log, handshakeTimeoutMs: WS_HANDSHAKE_TIMEOUT_MS, onSettled }),
      state: 'serving',
    };
    return link;
  }

  private promote(link: Link, grant: JoinGrant): void {
    const previous = this.active;
    this.active = link;
    this.everLive = true;
    this.log.info({ link: link.id, server: loggableServer(this.deps.settings.server), extensions: [...grant.extensions] }, 'tunnel live');
    this.scheduleRefresh(grant.expiresIn);
    if (previous !== undefined && previous.state !== 'gone') {
      previous.state = 'draining';
      this.draining.add(previous);
      this.settled(previous);
    }
    this.firstLive?.resolve();
    this.firstLive = undefined;
  }

  private dispatch(link: Link, push: ServerPush): void {
    // A link being retired has told the server it is done (its close is on the wire): a request or
    // WebSocket that crossed that close is not started, and the server sends it to another socket.
    if ((link.state === 'retiring' || link.state === 'gone') && (push.event === 'proxy_req' || push.event === 'ws_check' || push.event === 'ws_connect')) return;
    switch (push.event) {
      case 'proxy_req':
      case 'proxy_req_chunk':
      case 'proxy_req_end':
      case 'proxy_credit':
      case 'proxy_cancel':
        return link.http.onPush(push);
      case 'ws_check':
      case 'ws_connect':
      case 'ws_frame':
      case 'ws_close':
        return link.ws.onPush(push);
      case 'draining':
        if (link !== this.active || link.state !== 'serving') return;
        this.log.info({ link: link.id }, 'node draining: connecting a second socket before letting this one go');
        link.state = 'draining';
        return void this.connectLoop(push.reconnectAfterMs);
      case 'heartbeat_ack':
        return;
    }
  }

  /** A link's socket closed after its join (by the server, the network, or a missed heartbeat ack). */
  private closed(link: Link, code: number, reason: string): void {
    const was = link.state;
    link.state = 'gone';
    link.http.abortAll();
    link.ws.closeAll();
    this.draining.delete(link);
    if (link !== this.active) return;
    this.active = undefined;
    if (this.status !== 'running' || was === 'retiring') return;
    this.log.warn({ link: link.id, code, reason: reason.slice(0, 64) }, 'tunnel socket closed; reconnecting');
    // 1012 (and a drain already announced) asks for a new socket now; anything else backs off first.
    void this.connectLoop(code === 1012 || was === 'draining' ? 0 : backoffDelayMs(0, this.deps.backoff ?? DEFAULT_BACKOFF, this.deps.random));
  }

  /** A request or WebSocket of `link` ended: a draining link with nothing left is closed. */
  private settled(link: Link): void {
    if (link.state !== 'draining' || link === this.active || link.http.inFlight > 0 || link.ws.open > 0) return;
    this.draining.delete(link);
    void this.retire(link, 1000, 'replaced');
  }

  private async retire(link: Link, code: number, reason: string): Promise<void> {
    if (link.state !== 'gone') link.state = 'retiring';
    link.http.abortAll();
    link.ws.closeAll();
    await link.channel.close(code, reason);
  }

  private refusedAtStart(status: number): void {
    this.status = 'stopped';
    this.firstLive?.reject(new TokenRefusedError(status));
    this.firstLive = undefined;
    void this.pool.destroy();
  }

  private scheduleRefresh(expiresInS: number | undefined): void {
    clearTimeout(this.refreshTimer);
    const delay = refreshDelayMs(this.facts, expiresInS, Date.now());
    if (delay === undefined) return;
    this.refreshTimer = setTimeout(() => void this.refresh(), delay);
  }

  /** A new token at half-life, on the active link; new sockets use it. Without a live link the next join reschedules. */
  private async refresh(): Promise<void> {
    const link = this.active;
    if (link === undefined || this.status !== 'running') return;
    const retry = () => {
      clearTimeout(this.refreshTimer);
      this.refreshTimer = setTimeout(() => void this.refresh(), this.deps.refreshRetryMs ?? 30_000);
    };
    try {
      const reply = await link.channel.request('refresh_token', {}, this.deps.joinTimeoutMs ?? 10_000);
      if (this.status !== 'running') return;
      const refreshed = reply.ok ? decodeRefreshed(reply.response) : undefined;
      const read = refreshed === undefined ? undefined : readTunnelToken(refreshed.token, Date.now() / 1000);
      if (refreshed === undefined || read === undefined || !read.ok || read.facts.pathId !== this.facts.pathId) {
        this.log.warn({ reason: reply.ok ? 'unusable token in the reply' : reply.reason }, 'token refresh refused; retrying later');
        return retry();
      }
      this.token = refreshed.token;
      this.facts = read.facts;
      this.log.info({ expires_in: refreshed.expiresIn }, 'token refreshed');
      this.scheduleRefresh(refreshed.expiresIn);
    } catch (error) {
      if (this.status !== 'running') return;
      this.log.warn({ err: error instanceof Error ? error.message : String(error) }, 'token refresh failed; retrying later');
      retry();
    }
  }

  /** A pause that stop() cuts short. */
  private wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.retry = { timer: setTimeout(resolve, ms), resolve };
    }).finally(() => (this.retry = undefined));
  }

  private cancelRetry(): void {
    if (this.retry === undefined) return;
    clearTimeout(this.retry.timer);
    this.retry.resolve();
  }
}
