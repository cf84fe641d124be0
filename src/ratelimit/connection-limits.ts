// Upgrade-time limits (SPEC §3.7): concurrent connections and connect attempts
// per client IP (HTTP 429), and concurrent connections per node (HTTP 503).
// Per-IP state is keyed by an HMAC of the address with a per-process random
// key, so no IP address is stored, even in memory.
import { createHmac, randomBytes } from 'node:crypto';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';

export type AdmitDecision = { ok: true; ipKey: string } | { ok: false; status: 429 | 503; code: 'too_many_connections' | 'node_full' | 'connect_rate'; message: string };

export interface ConnectionLimitOptions {
  maxConnections: number;
  maxConnectionsPerIp: number;
  connectRatePerIp: number;
}

export class ConnectionLimits {
  private readonly hmacKey = randomBytes(32);
  private readonly perIp = new Map<string, number>();
  private readonly connectRate: RateLimiterMemory | undefined;
  private total = 0;

  constructor(private readonly options: ConnectionLimitOptions) {
    this.connectRate =
      options.connectRatePerIp > 0 ? new RateLimiterMemory({ points: options.connectRatePerIp, duration: 1, keyPrefix: 'c' }) : undefined;
  }

  get connections(): number {
    return this.total;
  }

  /** Decides on an upgrade attempt; on `ok` the caller must `release(ipKey)` when the connection ends. */
  async admit(ip: string): Promise<AdmitDecision> {
    const ipKey = createHmac('sha256', this.hmacKey).update(ip).digest('base64url').slice(0, 22);
    if (this.connectRate !== undefined) {
      try {
        await this.connectRate.consume(ipKey);
      } catch (rejection) {
        if (rejection instanceof RateLimiterRes)
          return { ok: false, status: 429, code: 'connect_rate', message: 'too many connection attempts from this address' };
        throw rejection;
      }
    }
    // Checked after the await: the counters may have moved meanwhile.
    if (this.options.maxConnections > 0 && this.total >= this.options.maxConnections)
      return { ok: false, status: 503, code: 'node_full', message: 'this node is at MAX_CONNECTIONS; try another node' };
    const current = this.perIp.get(ipKey) ?? 0;
    if (this.options.maxConnectionsPerIp > 0 && current >= this.options.maxConnectionsPerIp)
      return { ok: false, status: 429, code: 'too_many_connections', message: 'too many concurrent connections from this address' };
    this.perIp.set(ipKey, current + 1);
    this.total++;
    return { ok: true, ipKey };
  }

  release(ipKey: string): void {
    const current = this.perIp.get(ipKey) ?? 0;
    if (current <= 1) this.perIp.delete(ipKey);
    else this.perIp.set(ipKey, current - 1);
    if (this.total > 0) this.total--;
  }
}
