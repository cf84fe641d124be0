// Health that tells the truth (SPEC §6.1): a node is healthy only while its
// bus carries messages. A probe is published on the node's own channel every
// PROBE_INTERVAL_MS and must come back within PROBE_TIMEOUT_MS (2 s, SPEC);
// a connected-looking Redis that does not deliver fails the probe. The
// endpoints answer from the last probe, so a probe never delays a request.
import { channels, type Bus } from '../bus/bus';
import type { Config } from '../config/load';
import type { Logger } from '../log/logger';
import type { Metrics } from '../metrics/metrics';
import { jsonReply, type HttpReply } from '../transport/http-types';

const PROBE_INTERVAL_MS = 1000;
const PROBE_TIMEOUT_MS = 2000;

export interface HealthSources {
  connections: () => number;
  tunnels: () => number;
}

export class HealthMonitor {
  private busOk = true;
  private draining = false;
  private timer: NodeJS.Timeout | undefined;
  private probeSeq = 0;
  private pending = new Map<string, NodeJS.Timeout>();
  private readonly started = Date.now();
  private readonly channel: string;

  constructor(
    private readonly config: Config,
    private readonly bus: Bus,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    private readonly sources: HealthSources,
  ) {
    this.channel = channels.node(config.nodeId);
  }

  async start(): Promise<void> {
    await this.bus.subscribe(this.channel, (message) => this.onProbe(message));
    this.probe();
    this.timer = setInterval(() => this.probe(), PROBE_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    for (const timeout of this.pending.values()) clearTimeout(timeout);
    this.pending.clear();
  }

  /** From here until the process exits: /ready answers 503 and signaling_draining is 1. */
  setDraining(): void {
    this.draining = true;
    this.metrics.draining.set(1);
  }

  get isDraining(): boolean {
    return this.draining;
  }

  get ready(): boolean {
    return !this.draining && this.busOk && this.bus.isUp();
  }

  health(): HttpReply {
    const busUp = this.busOk && this.bus.isUp();
    const status = this.draining ? 'draining' : busUp ? 'healthy' : 'unhealthy';
    return jsonReply(status === 'healthy' ? 200 : 503, {
      status,
      node: this.config.nodeId,
      version: this.config.version,
      uptime_s: Math.floor((Date.now() - this.started) / 1000),
      connections: this.sources.connections(),
      tunnels: this.sources.tunnels(),
      bus: this.bus.kind,
      redis: this.bus.kind === 'memory' ? 'n/a' : busUp ? 'up' : 'down',
    });
  }

  readiness(): HttpReply {
    const ready = this.ready;
    return jsonReply(ready ? 200 : 503, { status: ready ? 'ready' : this.draining ? 'draining' : 'unavailable' });
  }

  private probe(): void {
    const id = `probe:${this.config.nodeId}:${++this.probeSeq}`;
    const timeout = setTimeout(() => {
      this.pending.delete(id);
      this.setBusOk(false);
    }, PROBE_TIMEOUT_MS);
    timeout.unref();
    this.pending.set(id, timeout);
    this.bus.publish(this.channel, id).catch(() => {
      clearTimeout(timeout);
      this.pending.delete(id);
      this.setBusOk(false);
    });
  }

  private onProbe(message: string): void {
    const timeout = this.pending.get(message);
    if (timeout === undefined) return;
    clearTimeout(timeout);
    this.pending.delete(message);
    this.setBusOk(true);
  }

  private setBusOk(ok: boolean): void {
    if (ok !== this.busOk) this.logger[ok ? 'info' : 'error']({ bus: this.bus.kind }, ok ? 'bus recovered' : 'bus probe failed');
    this.busOk = ok;
    this.metrics.busUp.set(ok ? 1 : 0);
  }
}
