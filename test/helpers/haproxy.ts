// A real HAProxy (Debian's) for tests, run from the SHIPPED
// deploy/haproxy/haproxy.cfg: its global, defaults, frontend and backend
// sections as they are, with only the listen addresses and the three server
// addresses moved to loopback. The rewrite is deliberately narrow and fails
// loudly when the shipped file no longer has the shape it expects, so that a
// change to the file is a change to this test too.
import { execFile, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { request } from 'node:http';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';
import { REPO_ROOT } from './process';

export const SHIPPED_HAPROXY_CFG = path.join(REPO_ROOT, 'deploy', 'haproxy', 'haproxy.cfg');

/** Where the sections the rewrite touches are; everything else is kept byte for byte. */
const APP_FRONTEND = 'frontend switchboard';
const STATS_FRONTEND = 'frontend stats';
const BACKEND = 'backend nodes';
const SERVER_COUNT = 3;

export interface LoopbackLayout {
  /** The app frontend (the shipped `bind :8080`). */
  frontendPort: number;
  /** The stats page (the shipped `bind :8404`). */
  statsPort: number;
  /** One port per shipped `server` line, in order. */
  serverPorts: readonly number[];
}

/** Debian installs HAProxy in /usr/sbin, which a non-root PATH may lack. */
export function haproxyBinary(): string {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).concat('/usr/sbin')) {
    const candidate = path.join(dir, 'haproxy');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch (_notHere) {
      // Not in this directory; the next one.
    }
  }
  throw new Error('haproxy not found on PATH or in /usr/sbin (scripts/ensure-test-deps.sh installs it)');
}

/**
 * The shipped config with `bind` lines of the two frontends moved to 127.0.0.1 and the backend's
 * server addresses replaced by 127.0.0.1:<port>, each server line's options kept. Throws when a
 * section is missing, a frontend has other than one `bind`, or the backend other than three servers.
 */
export function loopbackHaproxyConfig(shipped: string, layout: LoopbackLayout): string {
  if (layout.serverPorts.length !== SERVER_COUNT) throw new Error(`need ${SERVER_COUNT} server ports, got ${layout.serverPorts.length}`);
  const counts = new Map<string, number>();
  let section = '';
  const out = shipped.split('\n').map((line, index) => {
    // A section starts at column 0; its settings are indented; comments and blank lines belong to no one.
    if (/^[a-z]/.test(line)) section = line.trim();
    const directive = /^\s+(bind|server)\s/.exec(line)?.[1];
    if (directive === undefined) return line;
    const key = `${section}/${directive}`;
    const seen = (counts.get(key) ?? 0) + 1;
    counts.set(key, seen);
    const fail = (why: string) => new Error(`${SHIPPED_HAPROXY_CFG}:${index + 1}: ${why}: ${line.trim()}`);
    if (directive === 'bind') {
      const port = section === APP_FRONTEND ? layout.frontendPort : section === STATS_FRONTEND ? layout.statsPort : undefined;
      if (port === undefined) throw fail(`a bind outside "${APP_FRONTEND}" and "${STATS_FRONTEND}"`);
      const match = /^(\s+bind\s+):\d+(\s.*)?$/.exec(line);
      if (match === null) throw fail('expected "bind :<port> [options]"');
      return `${match[1]}127.0.0.1:${port}${match[2] ?? ''}`;
    }
    if (section !== BACKEND) throw fail(`a server outside "${BACKEND}"`);
    const match = /^(\s+server\s+\S+\s+)\S+:\d+(\s.*)$/.exec(line);
    const port = layout.serverPorts[seen - 1];
    if (match === null) throw fail('expected "server <name> <host>:<port> <options>"');
    if (port === undefined) throw fail(`more than ${SERVER_COUNT} servers`);
    return `${match[1]}127.0.0.1:${port}${match[2]}`;
  });
  const expected: [string, number][] = [
    [`${APP_FRONTEND}/bind`, 1],
    [`${STATS_FRONTEND}/bind`, 1],
    [`${BACKEND}/server`, SERVER_COUNT],
  ];
  for (const [key, count] of expected) {
    if (counts.get(key) !== count) throw new Error(`${SHIPPED_HAPROXY_CFG}: expected ${count} × "${key}", found ${counts.get(key) ?? 0}`);
  }
  return out.join('\n');
}

export interface ConfigCheck {
  code: number;
  /** stdout and stderr, one entry a line. */
  lines: string[];
}

/** `haproxy -c -f <file>`: HAProxy's own parse and validation, without starting anything. */
export function checkHaproxyConfig(file: string): Promise<ConfigCheck> {
  return new Promise((resolve) => {
    execFile(haproxyBinary(), ['-c', '-f', file], (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, lines: `${stdout}\n${stderr}`.split('\n').filter((l) => l.trim() !== '') });
    });
  });
}

export interface RunningHaproxy {
  pid: number;
  /** Everything HAProxy printed (its log goes to stdout: `log stdout`). */
  output: string[];
}

/** Starts `haproxy -db -f <file>` (foreground); killed by PID in the test's teardown. */
export function startHaproxy(t: TestContext, file: string): RunningHaproxy {
  const child = spawn(haproxyBinary(), ['-db', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error('could not spawn haproxy');
  const pid = child.pid;
  const output: string[] = [];
  for (const stream of [child.stdout, child.stderr]) createInterface({ input: stream }).on('line', (line) => output.push(line));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
    await exited;
  });
  return { pid, output };
}

/** One row of the stats page's CSV (`show stat`), keyed by column name: pxname, svname, status, check_status, check_code… */
export type StatsRow = Record<string, string>;

/** The stats page as CSV (`/stats;csv`), parsed. */
export function haproxyStats(statsPort: number): Promise<StatsRow[]> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: statsPort, path: '/stats;csv', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`stats page answered ${res.statusCode}`));
        const [header, ...rows] = body.split('\n').filter((l) => l !== '');
        const names = (header ?? '').replace(/^# /, '').split(',');
        resolve(rows.map((row) => Object.fromEntries(row.split(',').map((value, i) => [names[i] ?? `col${i}`, value]))));
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** The row of server `server` in backend `backend`; throws when there is none. */
export function serverRow(rows: readonly StatsRow[], backend: string, server: string): StatsRow {
  const row = rows.find((r) => r.pxname === backend && r.svname === server);
  if (row === undefined) throw new Error(`no stats row for ${backend}/${server}`);
  return row;
}
