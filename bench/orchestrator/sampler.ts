// Polls named processes in /proc while a measurement runs: CPU use over the
// polled span (1.0 = one core) and the peak of VmRSS above its first reading.
// Used where the load generator is not ours (wrk, curl) and so cannot say when
// its measured window starts: the span is from the first poll to the last.
import { cpuSeconds, rssBytes } from './processes';

export interface Sampled {
  /** CPU seconds per second over the span between the first and last successful poll. */
  cpu: number;
  /** Peak VmRSS minus the first reading, in bytes. */
  rssGrowth: number;
}

interface Track {
  pid: number;
  cpu0: number;
  t0: number;
  cpu1: number;
  t1: number;
  rss0: number;
  rssPeak: number;
}

function rssOrNaN(pid: number): number {
  try {
    return rssBytes(pid);
  } catch {
    return NaN; // the process has exited (wrk at the end of its run)
  }
}

export class Sampler {
  private readonly tracks = new Map<string, Track>();
  private readonly timer: NodeJS.Timeout;

  /** `intervalMs` 20: RSS of a node relaying 100 MiB can rise and fall within a fraction of a second. */
  constructor(pids: Record<string, number>, intervalMs = 20) {
    for (const [name, pid] of Object.entries(pids)) this.add(name, pid);
    this.timer = setInterval(() => this.poll(), intervalMs);
  }

  /** Starts polling one more process (the load generator, once spawned). */
  add(name: string, pid: number): void {
    const cpu = cpuSeconds(pid);
    const rss = rssOrNaN(pid);
    const now = performance.now();
    this.tracks.set(name, { pid, cpu0: cpu, t0: now, cpu1: cpu, t1: now, rss0: rss, rssPeak: rss });
  }

  private poll(): void {
    const now = performance.now();
    for (const t of this.tracks.values()) {
      const cpu = cpuSeconds(t.pid);
      if (Number.isFinite(cpu)) {
        t.cpu1 = cpu;
        t.t1 = now;
      }
      const rss = rssOrNaN(t.pid);
      if (rss > t.rssPeak) t.rssPeak = rss;
    }
  }

  /** Stops polling (after a last poll) and returns each process's figures. */
  stop(): Record<string, Sampled> {
    this.poll();
    clearInterval(this.timer);
    const out: Record<string, Sampled> = {};
    for (const [name, t] of this.tracks) {
      const span = (t.t1 - t.t0) / 1000;
      out[name] = { cpu: span > 0 ? (t.cpu1 - t.cpu0) / span : NaN, rssGrowth: t.rssPeak - t.rss0 };
    }
    return out;
  }
}
