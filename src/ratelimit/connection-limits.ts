// Upgrade-time limits (SPEC §3.7): concurrent connections and connect attempts
// per client IP (HTTP 429), and concurrent connections per node (HTTP 503).
// Public requests to tunnels draw on the same per-IP attempt budget
// (CONNECT_RATE_PER_IP), so a client cannot switch to /call/… to get more.
// Per-IP state is keyed by an HMAC of the address with a per-process random
// key, so no IP address is stored, even in memory.
//
// Decisions are synchronous (in-memory counters and the fixed-window limiter
// the frame limit uses), so an upgrade is answered in the callback uWS called
// it from, without onAborted bookkeeping or a promise (bench W5). With no
// per-IP limit configured the address is not even looked at.
import { createHmac, randomBytes } from 'node:crypto';
import { ALLOWED, MemoryRateLimiter, type RateDecision } from './rate-limiter';

export type AdmitDecision = { ok: true; ipKey: string } | { ok: false; status: 429 | 503; code: 'too_many_connections' | 'node_full' | 'connect_rate'; message: string };

export interface ConnectionLimitOptions {
  maxConnections: number;
  maxConnectionsPerIp: number;
  connectRatePerIp: number;
}

/** The ipKey of every connection when no per-IP limit is configured. */
const NO_IP = '';

export class ConnectionLimits {
  private readonly hmacKey = randomBytes(32);
  private readonly perIp = new Map<string, number>();
  private readonly connectRate: MemoryRateLimiter | undefined;
  private readonly byIp: boolean;
  private total = 0;

  constructor(private readonly options: ConnectionLimitOptions) {
    this.connectRate = options.connectRatePerIp > 0 ? new MemoryRateLimiter({ points: options.connectRatePerIp, durationS: 1 }) : undefined;
    this.byIp = options.maxConnectionsPerIp > 0 || this.connectRate !== undefined;
  }

  get connections(): number {
    return this.total;
  }

  /**
   * Decides on an upgrade attempt; `ip` is asked for only when a per-IP limit needs it. On `ok`
   * the caller must `release(ipKey)` when the connection ends.
   */
  admit(ip: () => string): AdmitDecision {
    if (this.options.maxConnections > 0 && this.total >= this.options.maxConnections)
      return { ok: false, status: 503, code: 'node_full', message: 'this node is at MAX_CONNECTIONS; try another node' };
    const ipKey = this.byIp ? this.keyOf(ip()) : NO_IP;
    if (this.connectRate !== undefined && !this.connectRate.consume(ipKey).allowed)
      return { ok: false, status: 429, code: 'connect_rate', message: 'too many connection attempts from this address' };
    const current = this.perIp.get(ipKey) ?? 0;
    if (this.options.maxConnectionsPerIp > 0 && current >= this.options.maxConnectionsPerIp)
      return { ok: false, status: 429, code: 'too_many_connections', message: 'too many concurrent connections from this address' };
    if (ipKey !== NO_IP) this.perIp.set(ipKey, current + 1);
    this.total++;
    return { ok: true, ipKey };
  }

  /**
   * Counts one public request (tunnels) against the per-IP attempt rate; `ip` is asked for only
   * when CONNECT_RATE_PER_IP is set. Nothing to release: a request holds no connection slot.
   */
  admitRequest(ip: () => string): RateDecision {
    return this.connectRate === undefined ? ALLOWED : this.connectRate.consume(this.keyOf(ip()));
  }

  release(ipKey: string): void {
    if (ipKey !== NO_IP) {
      const current = this.perIp.get(ipKey) ?? 0;
      if (current <= 1) this.perIp.delete(ipKey);
      else this.perIp.set(ipKey, current - 1);
    }
    if (this.total > 0) this.total--;
  }

  close(): void {
    this.connectRate?.close();
  }

  /** 128 bits of the HMAC as 22 base64url characters (a string of its own, not a slice holding a longer one). */
  private keyOf(ip: string): string {
    return createHmac('sha256', this.hmacKey).update(ip).digest().toString('base64url', 0, 16);
  }
}
