// Runs the compiled CLI (`node dist/src/cli/index.js ...`) as a real child
// process, the way operators and images start a node (SPEC §6.4), for the
// tests that need real signals, real exit codes and real stdout/stderr.
//
// The child's environment is this process's environment with every
// Switchboard variable removed (so a developer's JWT_SECRET or REDIS_URL
// cannot leak into a test), then PORT=0 and HOST=127.0.0.1, then the test's
// own `env`. Nothing here sleeps: waits are driven by the child's output and
// exit events, or poll with `eventually`.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';
import { NODE_FLAGS } from '../../src/cli/node-flags';
import { ENV_NAMES } from '../../src/config/schema';
import { eventually } from './eventually';

/** The repository root (this file runs from dist/test/helpers). */
export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
export const CLI_PATH = path.join(REPO_ROOT, 'dist', 'src', 'cli', 'index.js');

export interface Exited {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnedProcess {
  child: ChildProcess;
  pid: number;
  /** Every stdout line so far, JSON log lines and plain lines alike. */
  lines: string[];
  /** The stdout lines that parsed as JSON objects (pino records). */
  logs: Record<string, unknown>[];
  /** Every stderr line so far. */
  stderr: string[];
  /** Settles when the process has exited (never rejects). */
  exited: Promise<Exited>;
  /** Undefined while the process runs. */
  readonly exitStatus: Exited | undefined;
  kill(signal?: NodeJS.Signals): void;
  /** The first stdout line matching `match`, polling until it shows up or `timeoutMs` passes. */
  waitForLine(match: RegExp | ((line: string) => boolean), timeoutMs?: number): Promise<string>;
}

export interface SpawnedNode extends SpawnedProcess {
  /** The port from the "switchboard listening" log record. */
  port: number;
}

/** The child environment: inherited, minus Switchboard's variables, plus the defaults for tests, plus `env`. */
export function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ENV_NAMES) delete out[name];
  return { ...out, PORT: '0', HOST: '127.0.0.1', ...env };
}

/**
 * Starts `node dist/src/cli/index.js ...args` without waiting for anything.
 * With a test context, the process is killed (SIGKILL, by PID) in teardown
 * if it is still running.
 */
export function spawnCli(t: TestContext | undefined, env: Record<string, string>, args: string[], how: 'node' | 'plain' | 'shebang' = 'node'): SpawnedProcess {
  // 'node': node with the flags Switchboard runs with (node-flags.ts), as `npm start` and the image do;
  // 'plain': node without them; 'shebang': the file runs itself, as npm's installed bin does.
  const command = how === 'shebang' ? CLI_PATH : process.execPath;
  const argv = how === 'shebang' ? args : [...(how === 'node' ? NODE_FLAGS : []), CLI_PATH, ...args];
  const child = spawn(command, argv, { cwd: REPO_ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error(`could not spawn ${CLI_PATH}`);
  const pid = child.pid;
  const lines: string[] = [];
  const logs: Record<string, unknown>[] = [];
  const stderr: string[] = [];
  let exitStatus: Exited | undefined;

  // Both readers must reach the end of their stream before `exited` settles,
  // so that a test reading `lines` after `exited` sees the whole output.
  const stdoutDone = new Promise<void>((resolve) => {
    const rl = createInterface({ input: child.stdout });
    rl.on('line', (line) => {
      lines.push(line);
      const record = parseRecord(line);
      if (record !== undefined) logs.push(record);
    });
    rl.on('close', resolve);
  });
  const stderrDone = new Promise<void>((resolve) => {
    const rl = createInterface({ input: child.stderr });
    rl.on('line', (line) => stderr.push(line));
    rl.on('close', resolve);
  });
  const exited = new Promise<Exited>((resolve) => {
    child.once('exit', (code, signal) => {
      exitStatus = { code, signal };
      void Promise.all([stdoutDone, stderrDone]).then(() => resolve({ code, signal }));
    });
    child.once('error', () => {
      exitStatus ??= { code: null, signal: null };
      resolve(exitStatus);
    });
  });

  const running = () => exitStatus === undefined && child.exitCode === null && child.signalCode === null;
  t?.after(async () => {
    if (running()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch (error) {
        // ESRCH: it exited between the check and the kill; anything else is a real problem.
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
      }
    }
    await exited;
  });

  return {
    child,
    pid,
    lines,
    logs,
    stderr,
    exited,
    get exitStatus() {
      return exitStatus;
    },
    kill: (signal: NodeJS.Signals = 'SIGTERM') => {
      process.kill(pid, signal);
    },
    waitForLine: (match, timeoutMs = 5000) =>
      eventually(() => {
        const found = lines.find((line) => (typeof match === 'function' ? match(line) : match.test(line)));
        if (found === undefined) throw new Error(`no stdout line matching ${String(match)} within ${timeoutMs} ms; output:\n${describeOutput(lines, stderr)}`);
        return found;
      }, timeoutMs),
  };
}

/**
 * Starts a node (`serve` by default) and resolves once it logged
 * "switchboard listening", with its port. Rejects, with the output, if the
 * process exits first or does not listen within `timeoutMs`: a bound on a
 * hung start, not a timing check — generous, since a node starting beside
 * several others on a loaded 2-core machine has taken more than 10 s.
 */
export async function spawnNode(t: TestContext | undefined, env: Record<string, string>, args: string[] = ['serve'], timeoutMs = 30_000): Promise<SpawnedNode> {
  const proc = spawnCli(t, env, args);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`node did not log "switchboard listening" within ${timeoutMs} ms; output:\n${describeOutput(proc.lines, proc.stderr)}`));
    }, timeoutMs);
    const onLine = () => {
      const listening = proc.logs.find((l) => l.msg === 'switchboard listening');
      if (listening === undefined) return;
      cleanup();
      if (typeof listening.port === 'number' && listening.port > 0) resolve(listening.port);
      else reject(new Error(`"switchboard listening" without a port: ${JSON.stringify(listening)}`));
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      cleanup();
      // The exit event may come before the last lines were read: wait for the streams to end.
      void proc.exited.then(() => {
        const listening = proc.logs.find((l) => l.msg === 'switchboard listening');
        reject(new Error(`node exited (code ${code}, signal ${signal}) ${listening === undefined ? 'before listening' : 'right after listening'}; output:\n${describeOutput(proc.lines, proc.stderr)}`));
      });
    };
    const cleanup = () => {
      clearTimeout(timer);
      proc.child.stdout?.off('data', onData);
      proc.child.off('exit', onExit);
    };
    // `data` fires before readline has split the chunk; check on the next turn.
    const onData = () => setImmediate(onLine);
    proc.child.stdout?.on('data', onData);
    proc.child.once('exit', onExit);
    onLine();
  });
  return Object.assign(proc, { port });
}

export interface CliResult extends Exited {
  stdout: string;
  stderr: string;
}

/** Runs a CLI command to completion (`token`, `check-config`, a `serve` that must fail). */
export async function runCli(t: TestContext | undefined, env: Record<string, string>, args: string[]): Promise<CliResult> {
  const proc = spawnCli(t, env, args);
  const { code, signal } = await proc.exited;
  return { code, signal, stdout: proc.lines.join('\n'), stderr: proc.stderr.join('\n') };
}

function parseRecord(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch (_notJson) {
    // A plain line that happens to start with "{": kept in `lines` only.
    return undefined;
  }
}

function describeOutput(lines: string[], stderr: string[]): string {
  const tail = (xs: string[]) => xs.slice(-30).join('\n');
  return `--- stdout ---\n${tail(lines)}\n--- stderr ---\n${tail(stderr)}`;
}
