// `--profile-w6` (or `--only profile-w6`): W6's tunnel paths with the nodes and
// the sidecar under `node --cpu-prof`: small GETs and the 100 MiB download, on
// one node and across two (client on node B, sidecar on node A, Redis), each
// on fresh processes, each profile summarised like W1's (profile-summary.ts).
// Files: bench/out/profile-w6/<case>-<topology>/<process>/.
import { readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { profileMarkdown, summarizeProfile } from '../profile-summary';
import { runDownload, runWrk } from './http-load';
import type { Measurement } from './loadgen';
import { awaitStatus, backendConfig, startNginx, type Nginx } from './nginx';
import type { Options } from './options';
import { OUT, ROOT } from './paths';
import type { Child } from './processes';
import { describe } from './format';
import { ensureRedis, startSwitchboard, type Server } from './systems';
import { BIG_FILE, CALL_PREFIX, startSidecar, WARM_FILE, withTunnelFiles, type TunnelFiles } from './tunnel-systems';

type Topology = 'one node' | 'two nodes';

interface Profiled {
  /** Where the public client connects. */
  entry: Server;
  /** Profiled processes by name, with their profile folders; stopped in this order (sidecar first). */
  processes: { name: string; child: Child; dir: string }[];
}

/** Starts a topology's nodes and sidecar under --cpu-prof, each writing into `out/<name>`. */
async function startProfiled(topology: Topology, out: string, files: TunnelFiles, backend: Nginx): Promise<Profiled> {
  const prof = (name: string) => ['--cpu-prof', '--cpu-prof-dir', path.join(out, name)];
  const processes: Profiled['processes'] = [];
  const node = async (name: string, redisUrl?: string) => {
    const server = await startSwitchboard(`w6-prof-${name}`, redisUrl, prof(name));
    processes.push({ name, child: server.child, dir: path.join(out, name) });
    return server;
  };
  try {
    const redisUrl = topology === 'two nodes' ? await ensureRedis() : undefined;
    const sidecarNode = await node(topology === 'two nodes' ? 'node_a' : 'node', redisUrl);
    const entry = topology === 'two nodes' ? await node('node_b', redisUrl) : sidecarNode;
    const sidecar = await startSidecar('w6-prof-sidecar', sidecarNode, files.token, backend, prof('sidecar'));
    processes.unshift({ name: 'sidecar', child: sidecar, dir: path.join(out, 'sidecar') });
    await awaitStatus(entry.child, entry.port, `${CALL_PREFIX}/small`, 200, 15_000);
    return { entry, processes };
  } catch (error) {
    for (const p of processes) await p.child.stop();
    throw error;
  }
}

export async function profileTunnel(o: Options, log: (line: string) => void): Promise<string> {
  const out = path.join(OUT, 'profile-w6');
  rmSync(out, { recursive: true, force: true });
  const parts: string[] = [];
  await withTunnelFiles(async (files) => {
    const backend = await startNginx('nginx-backend', path.join(files.dir, 'backend'), (d, port) => backendConfig(d, port, files.www), '/small');
    try {
      const cases: Record<string, (port: number) => Promise<Measurement>> = {
        get: async (port) => {
          const run = { url: `http://127.0.0.1:${port}${CALL_PREFIX}/small`, script: files.wrkScript, connections: o.w6Connections, servers: {} };
          await runWrk({ ...run, durationS: o.w6WarmupS });
          return runWrk({ ...run, durationS: Math.max(o.w6DurationS, 5) });
        },
        download: async (port) => {
          const url = (file: string) => `http://127.0.0.1:${port}${CALL_PREFIX}/${file}`;
          await runDownload({ url: url(WARM_FILE.name), bytes: WARM_FILE.bytes, servers: {}, rssOf: [] });
          return runDownload({ url: url(BIG_FILE.name), bytes: BIG_FILE.bytes, servers: {}, rssOf: [] });
        },
      };
      for (const topology of ['one node', 'two nodes'] as const)
        for (const [name, measure] of Object.entries(cases)) {
          const dir = path.join(out, `${name}-${topology.replace(' ', '-')}`);
          const { entry, processes } = await startProfiled(topology, dir, files, backend);
          let result: Measurement | undefined;
          try {
            result = await measure(entry.port);
            log(`W6 profile, ${name}, ${topology}: ${describe(result)}`);
          } finally {
            // One after the other, sidecar first (a node draining with a live tunnel waits for it); a graceful exit writes the profile.
            for (const p of processes) await p.child.stop(15_000);
          }
          for (const p of processes) {
            const file = readdirSync(p.dir).find((f) => f.endsWith('.cpuprofile'));
            if (file === undefined) throw new Error(`node --cpu-prof wrote no profile in ${p.dir}`);
            const where = path.relative(ROOT, path.join(p.dir, file));
            parts.push(profileMarkdown(summarizeProfile(path.join(p.dir, file), ROOT, 15), `W6 ${name}, ${topology} — ${p.name} (${describe(result)}; ${where})`));
          }
        }
    } finally {
      await backend.child.stop();
    }
  });
  return parts.join('\n');
}
