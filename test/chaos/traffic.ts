// The traffic generator: N clients through the load balancer, in pairs
// (client 2k talks to 2k+1 and back), each sending numbered direct messages
// to its partner at a bounded rate while it is welcomed, and recording every
// answer and delivery in the ledger. A client whose socket closes for any
// reason but its own `stop` reconnects with `resume=<session of its last
// welcome>`, as SPEC §3.8/§3.9 tell a client to (after 1012 at once; after a
// lost connection with a short, capped backoff; never after 4009).
//
//   client ──ws──▶ HAProxy ──▶ node{1,2,3} ──Redis──▶ node ──▶ partner
//     │ sent(seq)                                         delivered(seq)
//     └◀── ack / ack queued / error{code} ── answered(seq)
import jwt from 'jsonwebtoken';
import WebSocket from 'ws';
import { eventually } from '../helpers/eventually';
import { TEST_SECRET } from '../helpers/node';
import type { Answer, Ledger } from './ledger';

export function appToken(user: string, device = 'd'): string {
  return jwt.sign({ sub: user, device_id: device, exp: Math.floor(Date.now() / 1000) + 3600 }, TEST_SECRET, { algorithm: 'HS256' });
}

export interface ClientStats {
  /** Connection attempts after the first welcome (with resume=). */
  reconnects: number;
  welcomes: number;
  /** Welcomes with resumed:true and the same session. */
  resumed: number;
  /** Welcomes with resumed:true but another session id (a contract breach). */
  resumedOtherSession: number;
  /** Reconnects answered resumed:false, by `reason` ("none" when the server gave none). */
  refused: Map<string, number>;
  /** Closes seen by a client, by code (1006 = no close frame: the connection was lost). */
  closes: Map<number, number>;
  draining: number;
  /** Sockets that opened but sent no welcome within the bound (terminated, then retried). */
  welcomeTimeouts: number;
  /** Errors that carried no id, by code. */
  errorsWithoutId: Map<string, number>;
}

const bump = <K>(map: Map<K, number>, k: K) => map.set(k, (map.get(k) ?? 0) + 1);

type Status = 'idle' | 'connecting' | 'live' | 'waiting' | 'stopped';

const WELCOME_TIMEOUT_MS = 10_000;
const MAX_IN_FLIGHT = 200;

export class ChaosClient {
  status: Status = 'idle';
  session: string | undefined;
  node: string | undefined;
  /** performance.now() of the last welcome. */
  welcomedAt = -1;
  private ws: WebSocket | undefined;
  private seq = 0;
  /** Sent on the current socket and not answered yet. */
  private readonly inFlight = new Set<number>();
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly user: string,
    readonly partner: string,
    private readonly url: string,
    private readonly ledger: Ledger,
    private readonly stats: ClientStats,
  ) {}

  get live(): boolean {
    return this.status === 'live';
  }

  connect(): void {
    if (this.status === 'stopped') return;
    this.status = 'connecting';
    const resume = this.session === undefined ? '' : `&resume=${encodeURIComponent(this.session)}`;
    if (this.session !== undefined) this.stats.reconnects++;
    const ws = new WebSocket(`${this.url}?token=${encodeURIComponent(appToken(this.user))}${resume}`);
    this.ws = ws;
    const welcomeTimer = setTimeout(() => {
      if (this.ws === ws && this.status === 'connecting') {
        this.stats.welcomeTimeouts++;
        ws.terminate();
      }
    }, WELCOME_TIMEOUT_MS);
    ws.on('message', (data: Buffer, isBinary) => {
      if (this.ws !== ws || isBinary) return;
      this.onFrame(JSON.parse(data.toString('utf8')) as Record<string, unknown>);
    });
    ws.on('error', () => undefined);
    ws.on('close', (code) => {
      clearTimeout(welcomeTimer);
      if (this.ws !== ws) return;
      this.ws = undefined;
      this.ledger.cutOff(this.user, this.inFlight, performance.now());
      this.inFlight.clear();
      if (this.status === 'stopped') return;
      bump(this.stats.closes, code);
      if (code === 4009) {
        this.status = 'stopped';
        return;
      }
      this.status = 'waiting';
      // After a drain close reconnect at once (a little jitter); after a lost connection back off, capped.
      const delay = code === 1012 ? Math.random() * 50 : Math.min(1000, 50 * 2 ** this.failures) * (0.5 + Math.random() / 2);
      if (code !== 1012) this.failures++;
      this.timer = setTimeout(() => this.connect(), delay);
    });
  }

  private onFrame(frame: Record<string, unknown>): void {
    switch (frame.type) {
      case 'welcome': {
        this.stats.welcomes++;
        const session = String(frame.session);
        if (this.session !== undefined) {
          if (frame.resumed === true) {
            if (session === this.session) this.stats.resumed++;
            else this.stats.resumedOtherSession++;
          } else bump(this.stats.refused, typeof frame.reason === 'string' ? frame.reason : 'none');
        }
        this.session = session;
        this.node = String(frame.node);
        this.welcomedAt = performance.now();
        this.failures = 0;
        this.status = 'live';
        return;
      }
      case 'message': {
        const payload = frame.payload as { seq?: unknown } | undefined;
        const seq = typeof payload?.seq === 'number' ? payload.seq : -1;
        this.ledger.delivered(String(frame.from), this.user, seq);
        return;
      }
      case 'ack':
      case 'error': {
        const id = typeof frame.id === 'string' ? frame.id : undefined;
        if (id === undefined || !id.startsWith('m')) {
          if (frame.type === 'error') bump(this.stats.errorsWithoutId, String(frame.code));
          return;
        }
        const seq = Number(id.slice(1));
        this.inFlight.delete(seq);
        const answer: Answer = frame.type === 'ack' ? (frame.queued === true ? 'queued' : 'ack') : `error:${String(frame.code)}`;
        this.ledger.answered(this.user, seq, answer, performance.now());
        return;
      }
      case 'draining':
        this.stats.draining++;
        return;
      default:
        return;
    }
  }

  /** Sends the next numbered message if welcomed and not too far ahead of the answers. */
  sendNext(): boolean {
    const ws = this.ws;
    if (this.status !== 'live' || ws === undefined || ws.readyState !== WebSocket.OPEN) return false;
    if (this.inFlight.size >= MAX_IN_FLIGHT) return false;
    const seq = ++this.seq;
    this.ledger.sent(this.user, this.partner, seq, performance.now());
    this.inFlight.add(seq);
    ws.send(JSON.stringify({ type: 'message', to: this.partner, id: `m${seq}`, payload: { seq } }));
    return true;
  }

  /** Ends the session (close 1000) and never reconnects. */
  stop(): void {
    this.status = 'stopped';
    clearTimeout(this.timer);
    const ws = this.ws;
    if (ws === undefined) return;
    if (ws.readyState === WebSocket.OPEN) ws.close(1000);
    else ws.terminate();
  }

  /** Drops the socket without a close frame (for teardown). */
  terminate(): void {
    this.status = 'stopped';
    clearTimeout(this.timer);
    this.ws?.terminate();
  }
}

export interface TrafficOptions {
  /** ws://host:port/ws */
  url: string;
  clients: number;
  /** Messages per second each client sends while sending is on. */
  ratePerClient: number;
  ledger: Ledger;
  /** User ids are `${prefix}${i}`. */
  prefix?: string;
}

export class Traffic {
  readonly clients: ChaosClient[] = [];
  readonly stats: ClientStats = {
    reconnects: 0,
    welcomes: 0,
    resumed: 0,
    resumedOtherSession: 0,
    refused: new Map(),
    closes: new Map(),
    draining: 0,
    welcomeTimeouts: 0,
    errorsWithoutId: new Map(),
  };
  private ticker: NodeJS.Timeout | undefined;

  constructor(private readonly options: TrafficOptions) {
    if (options.clients % 2 !== 0) throw new Error('clients come in pairs');
    const prefix = options.prefix ?? 'u';
    for (let i = 0; i < options.clients; i++) {
      this.clients.push(new ChaosClient(`${prefix}${i}`, `${prefix}${i ^ 1}`, options.url, options.ledger, this.stats));
    }
  }

  get users(): string[] {
    return this.clients.map((c) => c.user);
  }

  /** Connects every client, a batch at a time, and waits until all are welcomed. */
  async connect(timeoutMs = 30_000): Promise<void> {
    const batch = 25;
    for (let i = 0; i < this.clients.length; i += batch) {
      const some = this.clients.slice(i, i + batch);
      for (const c of some) c.connect();
      await eventually(() => {
        if (!some.every((c) => c.live)) throw new Error(`${some.filter((c) => !c.live).length} clients not welcomed`);
      }, timeoutMs);
    }
  }

  /**
   * Starts sending: every tick, each client gets its share of `ratePerClient`;
   * fractional shares carry over, so the rate holds for any tick length.
   */
  startSending(): void {
    if (this.ticker !== undefined) return;
    const tickMs = 20;
    const credit = new Map<ChaosClient, number>();
    // Spread the first sends so pairs do not start in lock step.
    for (const c of this.clients) credit.set(c, -Math.random());
    this.ticker = setInterval(() => {
      const share = (this.options.ratePerClient * tickMs) / 1000;
      for (const c of this.clients) {
        let have = (credit.get(c) ?? 0) + share;
        // A client that cannot send (reconnecting) does not bank credit for a burst later.
        while (have >= 1) {
          have -= 1;
          if (!c.sendNext()) {
            have = Math.min(have, 0);
            break;
          }
        }
        credit.set(c, have);
      }
    }, tickMs);
  }

  stopSending(): void {
    clearInterval(this.ticker);
    this.ticker = undefined;
  }

  /** The live clients whose last welcome came from `node`. */
  on(node: string): ChaosClient[] {
    return this.clients.filter((c) => c.live && c.node === node);
  }

  /** Polls until every client in `group` was welcomed after `since` (performance.now()); resolves with the ms from `since`, or undefined at the bound. */
  async recovered(group: readonly ChaosClient[], since: number, timeoutMs: number): Promise<number | undefined> {
    try {
      await eventually(() => {
        if (!group.every((c) => c.live && c.welcomedAt > since)) throw new Error('not all back');
      }, timeoutMs, 20);
    } catch (_notInTime) {
      // Reported as "not recovered" in the figures; the settle's bound catches it too.
      return undefined;
    }
    return Math.max(0, ...group.map((c) => c.welcomedAt - since));
  }

  /** Ends every session (close 1000). */
  stop(): void {
    this.stopSending();
    for (const c of this.clients) c.stop();
  }

  terminate(): void {
    this.stopSending();
    for (const c of this.clients) c.terminate();
  }
}
