// `--profile-w6` (or `--only profile-w6`): the one-node tunnel path of W6 with
// the node and the sidecar under `node --cpu-prof`, once for small GETs and
// once for the 100 MiB download, each profile summarised like W1's
// (profile-summary.ts). Files: bench/out/profile-w6/<case>/<process>/.
import { readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { profileMarkdown, summarizeProfile } from '../profile-summary';
import { runDownload, runWrk } from './http-load';
import { backendConfig, startNginx } from './nginx';
import type { Options } from './options';
import { OUT, ROOT } from './paths';
import { describe } from './report';
import { startSwitchboard } from './systems';
import { BIG_FILE, CALL_PREFIX, startSidecar, WARM_FILE, withTunnelFiles } from './tunnel-systems';

export async function profileTunnel(o: Options, log: (line: string) => void): Promise<string> {
  const out = path.join(OUT, 'profile-w6');
  rmSync(out, { recursive: true, force: true });
  const parts: string[] = [];
  await withTunnelFiles(async ({ dir: tmp, www, wrkScript: script, token }) => {
    const backend = await startNginx('nginx-backend', path.join(tmp, 'backend'), (d, port) => backendConfig(d, port, www), '/small');
    try {
      const cases = {
        get: async (port: number) => {
          const run = { url: `http://127.0.0.1:${port}${CALL_PREFIX}/small`, script, connections: o.w6Connections, servers: {} };
          await runWrk({ ...run, durationS: o.w6WarmupS });
          return runWrk({ ...run, durationS: Math.max(o.w6DurationS, 5) });
        },
        download: async (port: number) => {
          const url = (file: string) => `http://127.0.0.1:${port}${CALL_PREFIX}/${file}`;
          await runDownload({ url: url(WARM_FILE.name), bytes: WARM_FILE.bytes, servers: {}, rssOf: [] });
          return runDownload({ url: url(BIG_FILE.name), bytes: BIG_FILE.bytes, servers: {}, rssOf: [] });
        },
      };
      for (const [name, measure] of Object.entries(cases)) {
        const dirs = { node: path.join(out, name, 'node'), sidecar: path.join(out, name, 'sidecar') };
        const prof = (dir: string) => ['--cpu-prof', '--cpu-prof-dir', dir];
        const node = await startSwitchboard(`w6-prof-node`, undefined, prof(dirs.node));
        let result;
        try {
          const sidecar = await startSidecar('w6-prof-sidecar', node, token, backend, prof(dirs.sidecar));
          try {
            result = await measure(node.port);
            log(`W6 profile, ${name}, one node: ${describe(result)}`);
          } finally {
            await sidecar.stop(15_000); // a graceful exit writes the profile
          }
        } finally {
          await node.child.stop(15_000);
        }
        for (const [proc, dir] of Object.entries(dirs)) {
          const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
          if (file === undefined) throw new Error(`node --cpu-prof wrote no profile in ${dir}`);
          const where = path.relative(ROOT, path.join(dir, file));
          parts.push(profileMarkdown(summarizeProfile(path.join(dir, file), ROOT, 20), `W6 ${name} through the tunnel, one node — ${proc} (${describe(result)}; ${where})`));
        }
      }
    } finally {
      await backend.child.stop();
    }
  });
  return parts.join('\n');
}
