// Child processes and what the orchestrator reads about them: the Child
// wrapper (every child is tracked and killed by PID on exit; one that forks
// workers, like nginx, in a process group of its own, killed as a group), free
// ports, and CPU and RSS sampling from /proc.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { HOST, ROOT } from './paths';

/** Live children, and whether each leads a process group of its own (then its group is signalled). */
const live = new Map<ChildProcess, boolean>();

function signal(child: ChildProcess, group: boolean, name: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(group ? -child.pid : child.pid, name);
  } catch {
    // already gone
  }
}

export function killAll(): void {
  for (const [child, group] of live) signal(child, group, 'SIGKILL');
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
    /** A process group of its own, signalled as a whole: for a child that forks workers (nginx's master). */
    private readonly group = false,
  ) {
    this.proc = spawn(command, args, { cwd: ROOT, env, stdio: [stdin, 'pipe', 'pipe'], detached: group });
    live.set(this.proc, group);
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
    if (this.proc.stdout !== null) this.readLines(this.proc.stdout);
    this.proc.stderr?.on('data', (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString()).slice(-4000);
    });
  }

  /**
   * Splits stdout into lines only while someone listens. A node under load writes an audit line
   * per relayed request (W6); splitting them all would spend the bench's own CPU, on the same two
   * cores as the systems it measures, on lines nobody reads. Output is read (and dropped) either way,
   * so a child never blocks on a full pipe.
   */
  private readLines(stdout: NodeJS.ReadableStream): void {
    let partial = ''; // the last line so far, still without its newline
    stdout.setEncoding('utf8');
    stdout.on('data', (chunk: string) => {
      if (this.listeners.length === 0) {
        const end = chunk.lastIndexOf('\n');
        partial = end === -1 ? partial + chunk : chunk.slice(end + 1);
        return;
      }
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) for (const listener of this.listeners) listener(line);
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

  /** SIGTERM, then SIGKILL after `graceMs` (to the group, for a group leader: its workers too). */
  async stop(graceMs = 5000): Promise<void> {
    if (!live.has(this.proc)) return;
    signal(this.proc, this.group, 'SIGTERM');
    const timer = setTimeout(() => signal(this.proc, this.group, 'SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
    // A worker can outlive its master by a moment; nothing of the group may survive the bench.
    if (this.group) signal(this.proc, true, 'SIGKILL');
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

/** The PIDs of a process's direct children (nginx's workers), from /proc. */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .split(' ')
      .filter((s) => s !== '')
      .map(Number);
  } catch {
    return [];
  }
}

/** Resident set size in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match?.[1] === undefined) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]) * 1024;
}
