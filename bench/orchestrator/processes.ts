// Child processes and what the orchestrator reads about them: the Child
// wrapper (every child is tracked and killed by PID on exit), free ports, and
// CPU and RSS sampling from /proc.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { HOST, ROOT } from './paths';

const live = new Set<ChildProcess>();

export function killAll(): void {
  for (const child of live) {
    if (child.pid === undefined) continue;
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });

export class Child {
  readonly proc: ChildProcess;
  readonly exited: Promise<number | null>;
  private stderrTail = '';
  private listeners: ((line: string) => void)[] = [];

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    env: NodeJS.ProcessEnv,
    stdin: 'ignore' | 'pipe' = 'ignore',
  ) {
    this.proc = spawn(command, args, { cwd: ROOT, env, stdio: [stdin, 'pipe', 'pipe'] });
    live.add(this.proc);
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code) => {
        live.delete(this.proc);
        resolve(code);
      });
      this.proc.once('error', (error) => {
        live.delete(this.proc);
        this.stderrTail += String(error);
        resolve(null);
      });
    });
    if (this.proc.stdout !== null) createInterface({ input: this.proc.stdout }).on('line', (line) => this.listeners.forEach((l) => l(line)));
    this.proc.stderr?.on('data', (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString()).slice(-4000);
    });
  }

  get pid(): number {
    if (this.proc.pid === undefined) throw new Error(`${this.name} did not start`);
    return this.proc.pid;
  }

  get stderr(): string {
    return this.stderrTail.trim();
  }

  onLine(listener: (line: string) => void): () => void {
    this.listeners.push(listener);
    return () => (this.listeners = this.listeners.filter((l) => l !== listener));
  }

  /** The first stdout line for which `match` returns a value (a throwing `match` rejects). */
  waitFor<T>(match: (line: string) => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (error: Error | undefined, value?: T) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        off();
        if (error !== undefined) reject(error);
        else resolve(value as T);
      };
      const timer = setTimeout(() => finish(new Error(`${this.name}: no ${what} within ${timeoutMs} ms; stderr: ${this.stderr}`)), timeoutMs);
      void this.exited.then((code) => finish(new Error(`${this.name} exited (${code}) before ${what}; stderr: ${this.stderr}`)));
      const off = this.onLine((line) => {
        try {
          const value = match(line);
          if (value !== undefined) finish(undefined, value);
        } catch (error) {
          finish(error instanceof Error ? error : new Error(String(error)));
        }
      });
    });
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (!live.has(this.proc)) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

export function parseJson(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** Resident set size in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match?.[1] === undefined) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]) * 1024;
}
