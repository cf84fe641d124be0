// The systems W6 measures, all up for a round and stopped by PID after it:
//
//   direct      load ──► back end (nginx)
//   nginx       load ──► nginx proxy_pass ──keep-alive──► back end
//   one node    load ──► node ◄──WebSocket── sidecar ──► back end
//   two nodes   load ──► node B ──Redis──► node A ◄──WebSocket── sidecar ──► back end
//
// The sidecars are Switchboard's own (`switchboard tunnel`, src/sidecar/),
// each with a tunnel token minted by `switchboard token --tunnel`; each path
// has a sidecar of its own, so the one-node node runs without Redis.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeWrkScript } from './http-load';
import { awaitStatus, backendConfig, proxyConfig, startNginx, type Nginx } from './nginx';
import { HOST, SWITCHBOARD_CLI } from './paths';
import { Child, parseJson } from './processes';
import { ensureRedis, startSwitchboard, type Server } from './systems';
import { JWT_SECRET } from './tokens';

export const TUNNEL_PATH_ID = 'bench';
/** Public paths start with this; nginx's proxy takes the same prefix off. */
export const CALL_PREFIX = `/call/${TUNNEL_PATH_ID}`;

export const BIG_FILE = { name: 'big.bin', bytes: 100 * 2 ** 20 };
/** Downloaded once before each measured download: JIT and buffers warm, the same for every path. */
export const WARM_FILE = { name: 'warm.bin', bytes: 8 * 2 ** 20 };

export interface TunnelSystems {
  backend: Nginx;
  proxy: Nginx;
  one: { node: Server; sidecar: Child };
  two: { nodeA: Server; nodeB: Server; sidecar: Child };
}

/** The back end's files: random bytes (nothing on the way may compress them). */
function writeBackendFiles(root: string): void {
  mkdirSync(root, { recursive: true, mode: 0o755 });
  for (const file of [BIG_FILE, WARM_FILE]) {
    const fd = openSync(path.join(root, file.name), 'w', 0o644);
    try {
      for (let left = file.bytes; left > 0; left -= 2 ** 20) writeSync(fd, randomBytes(Math.min(left, 2 ** 20)));
    } finally {
      closeSync(fd);
    }
  }
}

/** A tunnel token for TUNNEL_PATH_ID, minted the way an operator would: `switchboard token --tunnel`. */
function mintTunnelToken(): string {
  const out = execFileSync(process.execPath, [SWITCHBOARD_CLI, 'token', '--tunnel', TUNNEL_PATH_ID, '--ttl', String(6 * 3600)], {
    env: { PATH: process.env.PATH, JWT_SECRET },
    timeout: 20_000,
  });
  return out.toString().trim();
}

export interface TunnelFiles {
  /** A temporary folder for the nginx prefixes. */
  dir: string;
  /** The back end's document root (BIG_FILE, WARM_FILE). */
  www: string;
  wrkScript: string;
  token: string;
}

/**
 * Runs `fn` with a temporary folder holding the back end's files, wrk's script
 * and a tunnel token. The folder goes afterwards, and on exit if the bench is
 * interrupted (the exit handler of processes.ts kills the children first).
 */
export async function withTunnelFiles<T>(fn: (files: TunnelFiles) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchboard-w6-'));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  process.once('exit', remove);
  try {
    chmodSync(dir, 0o755); // nginx's worker (nobody, when run as root) reads the files below
    const www = path.join(dir, 'www');
    writeBackendFiles(www);
    return await fn({ dir, www, wrkScript: writeWrkScript(dir), token: mintTunnelToken() });
  } finally {
    process.off('exit', remove);
    remove();
  }
}

/** `nodeArgs`: Node flags (the profile's --cpu-prof); by default none, as the `switchboard` command runs. */
export async function startSidecar(name: string, node: Server, token: string, backend: Nginx, nodeArgs: string[] = []): Promise<Child> {
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, SWITCHBOARD_TOKEN: token, LOG_LEVEL: 'info' };
  const args = [...nodeArgs, SWITCHBOARD_CLI, 'tunnel', '--server', `ws://${HOST}:${node.port}`, '--to', `http://${HOST}:${backend.port}`];
  // Its logs are read for "tunnel live" and discarded.
  const child = new Child(name, process.execPath, args, env);
  await child.waitFor((line) => (parseJson(line)?.msg === 'tunnel live' ? true : undefined), 20_000, '"tunnel live" line');
  return child;
}

/** Starts everything a W6 round measures; on a failure, stops what had started. */
export async function deployTunnel(dir: string, wwwRoot: string, token: string): Promise<TunnelSystems> {
  const started: Child[] = [];
  const track = <T extends { child: Child } | Child>(x: T): T => {
    started.push(x instanceof Child ? x : x.child);
    return x;
  };
  try {
    const backend = track(await startNginx('nginx-backend', path.join(dir, 'backend'), (d, port) => backendConfig(d, port, wwwRoot), '/small'));
    const proxy = track(
      await startNginx('nginx-proxy', path.join(dir, 'proxy'), (d, port) => proxyConfig(d, port, backend.port, CALL_PREFIX), `${CALL_PREFIX}/small`),
    );
    const node = track(await startSwitchboard('w6-node'));
    const oneSidecar = track(await startSidecar('w6-sidecar', node, token, backend));
    const redisUrl = await ensureRedis();
    const nodeA = track(await startSwitchboard('w6-node-a', redisUrl));
    const nodeB = track(await startSwitchboard('w6-node-b', redisUrl));
    const twoSidecar = track(await startSidecar('w6-sidecar-a', nodeA, token, backend));
    // A public request works once its node has the route: at once on the sidecar's node, via Redis on the other.
    await awaitStatus(node.child, node.port, `${CALL_PREFIX}/small`, 200, 15_000);
    await awaitStatus(nodeB.child, nodeB.port, `${CALL_PREFIX}/small`, 200, 15_000);
    return { backend, proxy, one: { node, sidecar: oneSidecar }, two: { nodeA, nodeB, sidecar: twoSidecar } };
  } catch (error) {
    await Promise.all(started.map((c) => c.stop()));
    throw error;
  }
}

/** Sidecars first (a node draining with a live tunnel would wait for it), then nodes and nginx. */
export async function undeployTunnel(s: TunnelSystems): Promise<void> {
  await Promise.all([s.one.sidecar.stop(), s.two.sidecar.stop()]);
  await Promise.all([s.one.node, s.two.nodeA, s.two.nodeB, s.proxy, s.backend].map((x) => x.child.stop()));
}
