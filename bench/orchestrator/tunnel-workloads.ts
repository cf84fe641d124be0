// W6: HTTP through the tunnel (SPEC §5) and Switchboard's own sidecar, against
// nginx's proxy_pass to the same back end and the back end direct, all in one
// run (see "W6" in bench/README.md and tunnel-systems.ts for the paths).
//
// Each round deploys every path once and measures them in turn: small GETs
// (wrk) on direct, nginx, one node, two nodes; then a 100 MiB download (curl)
// on direct, one node, two nodes. The rows of the report pair two of these
// paths: the tunnel against nginx (GET), nginx against direct (the reference),
// the tunnel against direct (download).
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { runDownload, runWrk } from './http-load';
import type { Measurement } from './loadgen';
import type { Options } from './options';
import { describe } from './format';
import type { MetricSpec, OwnRoundsGroup, Workload, WorkloadResult } from './model';
import { evaluate } from './statistics';
import { redisPids } from './systems';
import { BIG_FILE, CALL_PREFIX, deployTunnel, undeployTunnel, WARM_FILE, withTunnelFiles, type TunnelSystems } from './tunnel-systems';

type Path = 'direct' | 'nginx' | 'one' | 'two';

const PATH_LABEL: Record<Path, string> = {
  direct: 'back end direct',
  nginx: 'nginx proxy_pass',
  one: 'tunnel, one node',
  two: 'tunnel, two nodes (Redis)',
};

const GET_PATHS: readonly Path[] = ['direct', 'nginx', 'one', 'two'];
const DOWNLOAD_PATHS: readonly Path[] = ['direct', 'one', 'two'];

/** A report row: `measured` in the Switchboard column against `baseline`, from the same rounds. */
interface Row {
  spec: Pick<Workload, 'id' | 'title' | 'params' | 'metrics'>;
  kind: 'get' | 'download';
  baseline: Path;
  measured: Path;
}

const LATENCY: MetricSpec[] = [
  { key: 'p50_us', label: 'p50 latency', unit: 'µs' },
  { key: 'p99_us', label: 'p99 latency', unit: 'µs' },
];

function rows(connections: number): Row[] {
  const get = (measured: Path, baseline: Path, min?: number): Row => ({
    spec: {
      id: `W6-get-${measured}`,
      title: `W6 small GET, ${connections} keep-alive conns: ${PATH_LABEL[measured]} (baseline: ${PATH_LABEL[baseline]})`,
      params: { connections },
      metrics: [{ key: 'req_per_s', label: 'requests/s', unit: 'req/s', ...(min === undefined ? {} : { target: { kind: 'ratio', min } }) }, ...LATENCY],
    },
    kind: 'get',
    baseline,
    measured,
  });
  const download = (measured: Path, rss: [string, string][], min?: number): Row => ({
    spec: {
      id: `W6-download-${measured}`,
      title: `W6 100 MiB download: ${PATH_LABEL[measured]} (baseline: ${PATH_LABEL.direct})`,
      params: { bytes: BIG_FILE.bytes },
      metrics: [
        { key: 'mb_per_s', label: 'MB/s', unit: 'MB/s', ...(min === undefined ? {} : { target: { kind: 'ratio', min } }) },
        ...rss.map(([name, label]): MetricSpec => ({ key: `rss_${name}_mib`, label: `${label} peak RSS growth`, unit: 'MiB' })),
      ],
    },
    kind: 'download',
    baseline: 'direct',
    measured,
  });
  return [
    get('one', 'nginx', 0.5),
    get('two', 'nginx', 0.35),
    get('nginx', 'direct'),
    download('one', [['node', 'node'], ['sidecar', 'sidecar']], 0.5),
    download('two', [['node_a', 'node A (sidecar)'], ['node_b', 'node B (client)'], ['sidecar', 'sidecar']]),
  ];
}

/** The processes that serve a path, by the names their CPU (`cpu_<name>`) and RSS are reported under. */
function servers(s: TunnelSystems, p: Path): Record<string, number> {
  const backend = { backend: s.backend.worker };
  switch (p) {
    case 'direct':
      return backend;
    case 'nginx':
      return { proxy: s.proxy.worker, ...backend };
    case 'one':
      return { node: s.one.node.child.pid, sidecar: s.one.sidecar.pid, ...backend };
    case 'two': {
      const [redis] = redisPids();
      return { node_a: s.two.nodeA.child.pid, node_b: s.two.nodeB.child.pid, sidecar: s.two.sidecar.pid, ...(redis === undefined ? {} : { redis }), ...backend };
    }
  }
}

/** The public URL of a file or path on the back end, through path `p`. */
function url(s: TunnelSystems, p: Path, file: string): string {
  const port = { direct: s.backend.port, nginx: s.proxy.port, one: s.one.node.port, two: s.two.nodeB.port }[p];
  return `http://127.0.0.1:${port}${p === 'direct' ? '' : CALL_PREFIX}/${file}`;
}

function onPath(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function runTunnelGroup(o: Options, log: (line: string) => void): Promise<WorkloadResult[]> {
  const missing = ['nginx', 'wrk', 'curl'].filter((c) => !onPath(c));
  if (missing.length > 0) throw new Error(`W6 needs ${missing.join(', ')}: run bench/run.sh (it installs them as root), or: sudo apt-get install -y ${missing.join(' ')}`);
  type Kind = Row['kind'];
  const none = (): Record<Path, (Measurement | { failed: string })[]> => ({ direct: [], nginx: [], one: [], two: [] });
  const runs: Record<Kind, ReturnType<typeof none>> = { get: none(), download: none() };
  const record = (kind: Kind, p: Path, round: number, m: Measurement | { failed: string }) => {
    runs[kind][p].push(m);
    const what = kind === 'get' ? 'W6 small GET' : 'W6 100 MiB download';
    log(`${what} — ${PATH_LABEL[p]} run ${round}/${o.runs}: ${'failed' in m ? `FAILED: ${m.failed}` : describe(m)}`);
  };
  const attempt = async (kind: Kind, p: Path, round: number, measure: () => Promise<Measurement>) => {
    try {
      record(kind, p, round, await measure());
    } catch (error) {
      record(kind, p, round, { failed: error instanceof Error ? error.message : String(error) });
    }
  };

  await withTunnelFiles(async ({ dir, www, wrkScript: script, token }) => {
    for (let round = 1; round <= o.runs; round++) {
      let s: TunnelSystems;
      try {
        s = await deployTunnel(path.join(dir, `round-${round}`), www, token);
      } catch (error) {
        const failed = { failed: `deploy: ${error instanceof Error ? error.message : String(error)}` };
        for (const p of GET_PATHS) record('get', p, round, failed);
        for (const p of DOWNLOAD_PATHS) record('download', p, round, failed);
        continue;
      }
      try {
        const wrk = (p: Path, durationS: number) => runWrk({ url: url(s, p, 'small'), script, connections: o.w6Connections, durationS, servers: servers(s, p) });
        for (const p of GET_PATHS)
          await attempt('get', p, round, async () => {
            await wrk(p, o.w6WarmupS);
            return wrk(p, o.w6DurationS);
          });
        for (const p of DOWNLOAD_PATHS)
          await attempt('download', p, round, async () => {
            await runDownload({ url: url(s, p, WARM_FILE.name), bytes: WARM_FILE.bytes, servers: {}, rssOf: [] });
            const named = servers(s, p);
            return runDownload({ url: url(s, p, BIG_FILE.name), bytes: BIG_FILE.bytes, servers: named, rssOf: Object.keys(named).filter((n) => n.startsWith('node') || n === 'sidecar') });
          });
      } finally {
        await undeployTunnel(s);
      }
    }
  });

  return rows(o.w6Connections).map((row) => evaluate(row.spec, 'W6', { raw: runs[row.kind][row.baseline], switchboard: runs[row.kind][row.measured] }));
}

export function tunnelGroup(): OwnRoundsGroup {
  return { name: 'W6', title: 'HTTP through the tunnel vs nginx proxy_pass', run: runTunnelGroup };
}
