// A local Redis Cluster for W2 on the topology operators will run: three
// masters (no replicas) on free loopback ports, slots spread by
// `redis-cli --cluster create`, ready once every master says cluster_state:ok.
// Started once per bench run and stopped with the shared redis-server.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Child, freePort, sleep } from './processes';
import { HOST } from './paths';

const MASTERS = 3;
const run = promisify(execFile);

let cluster: { nodes: string; children: Child[]; dir: string } | undefined;

/** `host:port,…` of the cluster's masters (REDIS_CLUSTER_NODES), starting it on first use. */
export async function ensureRedisCluster(): Promise<string> {
  if (cluster !== undefined) return cluster.nodes;
  const dir = mkdtempSync(join(tmpdir(), 'sb-bench-cluster-'));
  const ports: number[] = [];
  while (ports.length < MASTERS) {
    const port = await freePort();
    // The cluster bus listens on port + 10000.
    if (port + 10_000 <= 65_535 && !ports.includes(port)) ports.push(port);
  }
  const children = ports.map(
    (port) =>
      new Child(`redis-cluster-${port}`, 'redis-server', [
        ...['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', dir],
        ...['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', '2000'],
      ], { PATH: process.env.PATH }),
  );
  cluster = { nodes: ports.map((p) => `${HOST}:${p}`).join(','), children, dir };
  await Promise.all(children.map((child) => child.waitFor((line) => (line.includes('Ready to accept connections') ? true : undefined), 10_000, 'ready line')));
  await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `${HOST}:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30_000 });
  const deadline = Date.now() + 20_000;
  for (;;) {
    const infos = await Promise.all(ports.map((p) => run('redis-cli', ['-h', HOST, '-p', String(p), 'cluster', 'info'], { timeout: 2000 }).then((r) => r.stdout)));
    if (infos.every((info) => /^cluster_state:ok\r?$/m.test(info) && new RegExp(`^cluster_known_nodes:${MASTERS}\\r?$`, 'm').test(info))) break;
    if (Date.now() > deadline) throw new Error(`the bench's Redis Cluster did not come up:\n${infos.join('\n')}`);
    await sleep(50);
  }
  return cluster.nodes;
}

/** The masters' PIDs (CPU sampling), when the cluster runs. */
export function redisClusterPids(): number[] {
  return cluster?.children.flatMap((child) => (child.proc.pid === undefined ? [] : [child.proc.pid])) ?? [];
}

/** The masters' `host:port`, when the cluster runs. */
export function redisClusterEndpoints(): string[] {
  return cluster?.nodes.split(',') ?? [];
}

export async function stopRedisCluster(): Promise<void> {
  const stopping = cluster;
  cluster = undefined;
  if (stopping === undefined) return;
  await Promise.all(stopping.children.map((child) => child.stop()));
  rmSync(stopping.dir, { recursive: true, force: true });
}
