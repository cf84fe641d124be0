// Real Redis Cluster and Redis Sentinel deployments for tests, built from
// redis-server processes on free ports in a private temp directory. Every
// process is killed by PID in teardown and the directory removed. Nothing
// sleeps: readiness is polled with `eventually`.
//
//   startRedisCluster(t)   3 masters, no replicas, all 16384 slots assigned
//   startRedisSentinel(t)  1 master + N sentinels monitoring it as "mymaster"
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { eventually } from './eventually';
import { freePort, startRedis } from './redis';

export interface RedisClusterDeployment {
  /** `host:port,host:port,...` for REDIS_CLUSTER_NODES. */
  nodes: string;
  /** Ports of the masters, in creation order. */
  ports: number[];
  /** A key prefix unique to this deployment (REDIS_PREFIX). */
  prefix: string;
  pids: number[];
}

export interface RedisSentinelDeployment {
  /** `host:port,...` of the sentinels, for REDIS_SENTINELS. */
  sentinels: string;
  /** The master group name, for REDIS_SENTINEL_NAME. */
  name: string;
  masterPort: number;
  sentinelPorts: number[];
  prefix: string;
  pids: number[];
}

const HOST = '127.0.0.1';
let prefixSeq = 0;
const uniquePrefix = (kind: string) => `${kind}${process.pid}-${++prefixSeq}:`;

/** Runs redis-cli with `args` and resolves with its stdout; rejects on a non-zero exit. */
export function redisCli(args: string[], timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', args, { timeout: timeoutMs, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error !== null) reject(new Error(`redis-cli ${args.join(' ')} failed: ${error.message}\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

/** The non-empty lines of a redis-cli reply (one element per line when not on a TTY). */
export async function redisCliLines(port: number, ...args: string[]): Promise<string[]> {
  const out = await redisCli(['-h', HOST, '-p', String(port), ...args]);
  return out.split('\n').map((line) => line.trim()).filter((line) => line !== '');
}

/** Tracks spawned processes and kills them all by PID (SIGKILL), waiting for each to exit. */
class Processes {
  private readonly children: ChildProcess[] = [];

  spawn(args: string[], logFile: string): ChildProcess {
    const child = spawn('redis-server', [...args, '--logfile', logFile], { stdio: 'ignore' });
    if (child.pid === undefined) throw new Error(`could not spawn redis-server ${args.join(' ')}`);
    this.children.push(child);
    return child;
  }

  get pids(): number[] {
    return this.children.map((c) => c.pid).filter((pid): pid is number => pid !== undefined);
  }

  async killAll(): Promise<void> {
    await Promise.all(this.children.map(killAndWait));
  }
}

/** SIGKILLs `child` by PID unless it has exited, and resolves once it has. */
export async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    process.kill(child.pid, 'SIGKILL');
  } catch (error) {
    // ESRCH: it exited between the check and the kill.
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    return;
  }
  await exited;
}

/** A private temp dir plus a process list, both cleaned up in t.after (also when setup fails half way). */
function workspace(t: TestContext, kind: string): { dir: string; processes: Processes } {
  const dir = mkdtempSync(join(tmpdir(), `sb-${kind}-`));
  const processes = new Processes();
  t.after(async () => {
    await processes.killAll();
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, processes };
}

async function waitForPing(port: number, timeoutMs = 10_000): Promise<void> {
  await eventually(async () => {
    const reply = await redisCli(['-h', HOST, '-p', String(port), 'ping'], 2000);
    if (reply.trim() !== 'PONG') throw new Error(`port ${port} answered ${reply.trim()}`);
  }, timeoutMs, 25);
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, HOST, () => server.close(() => resolve(true)));
  });
}

function serverArgs(port: number, dir: string): string[] {
  return ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', dir];
}

/** `requireFullCoverage: false`: masters keep serving their slots while another master is down (cluster-require-full-coverage no). */
export async function startRedisCluster(t: TestContext, masters = 3, options: { requireFullCoverage?: boolean } = {}): Promise<RedisClusterDeployment> {
  const { dir, processes } = workspace(t, 'rcluster');
  const ports: number[] = [];
  while (ports.length < masters) {
    const port = await freePort();
    // The cluster bus listens on port + 10000: both must be free.
    if (port + 10_000 <= 65_535 && !ports.includes(port) && (await canListen(port + 10_000))) ports.push(port);
  }
  for (const port of ports) {
    processes.spawn(
      [
        ...serverArgs(port, dir),
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        join(dir, `nodes-${port}.conf`),
        '--cluster-node-timeout',
        '2000',
        '--cluster-require-full-coverage',
        options.requireFullCoverage === false ? 'no' : 'yes',
      ],
      join(dir, `redis-${port}.log`),
    );
  }
  await Promise.all(ports.map((port) => waitForPing(port)));
  await redisCli(['--cluster', 'create', ...ports.map((p) => `${HOST}:${p}`), '--cluster-replicas', '0', '--cluster-yes'], 30_000);
  // Every master must agree the cluster is up before a client reads the slot map from any of them.
  await eventually(async () => {
    for (const port of ports) {
      const info = await redisCli(['-h', HOST, '-p', String(port), 'cluster', 'info'], 2000);
      if (!/^cluster_state:ok\r?$/m.test(info)) throw new Error(`cluster not ok on ${port}:\n${info}`);
      if (!new RegExp(`^cluster_known_nodes:${masters}\\r?$`, 'm').test(info)) throw new Error(`not every node known on ${port}:\n${info}`);
    }
  }, 20_000, 50);
  return { nodes: ports.map((p) => `${HOST}:${p}`).join(','), ports, prefix: uniquePrefix('c'), pids: processes.pids };
}

/**
 * Writes the config of a sentinel on `port` watching `name` at `masterPort` (quorum 1) and returns
 * its path. Sentinel rewrites its config file (known peers, epochs), so each gets its own copy.
 */
export function sentinelConf(dir: string, port: number, name: string, masterPort: number, downAfterMs: number): string {
  const conf = join(dir, `sentinel-${port}.conf`);
  const lines = [
    `port ${port}`,
    `bind ${HOST}`,
    `dir ${dir}`,
    `sentinel monitor ${name} ${HOST} ${masterPort} 1`,
    `sentinel down-after-milliseconds ${name} ${downAfterMs}`,
    `sentinel failover-timeout ${name} 5000`,
  ];
  writeFileSync(conf, `${lines.join('\n')}\n`);
  return conf;
}

export async function startRedisSentinel(t: TestContext, sentinelCount = 1): Promise<RedisSentinelDeployment> {
  const { dir, processes } = workspace(t, 'rsentinel');
  const name = 'mymaster';
  const masterPort = await freePort();
  processes.spawn(serverArgs(masterPort, dir), join(dir, `redis-${masterPort}.log`));
  await waitForPing(masterPort);

  const sentinelPorts: number[] = [];
  for (let i = 0; i < sentinelCount; i++) {
    let port = await freePort();
    while (port === masterPort || sentinelPorts.includes(port)) port = await freePort();
    sentinelPorts.push(port);
    processes.spawn([sentinelConf(dir, port, name, masterPort, 2000), '--sentinel'], join(dir, `sentinel-${port}.log`));
  }
  // Ready when every sentinel answers with the master's address and sees it up.
  await eventually(async () => {
    for (const port of sentinelPorts) {
      const addr = await redisCliLines(port, 'sentinel', 'get-master-addr-by-name', name);
      if (addr[0] !== HOST || addr[1] !== String(masterPort)) throw new Error(`sentinel ${port} reports master ${addr.join(':')}`);
      const master = await redisCliLines(port, 'sentinel', 'master', name);
      const flags = master[master.indexOf('flags') + 1];
      if (flags !== 'master') throw new Error(`sentinel ${port} sees master flags ${flags}`);
    }
  }, 20_000, 50);
  return {
    sentinels: sentinelPorts.map((p) => `${HOST}:${p}`).join(','),
    name,
    masterPort,
    sentinelPorts,
    prefix: uniquePrefix('s'),
    pids: processes.pids,
  };
}

/** How a node reaches a deployment: the environment a config loads it from. */
export type RedisAt = { REDIS_URL: string } | { REDIS_CLUSTER_NODES: string };

/** Where a contract suite's stores connect, and the key prefix they share. */
export interface RedisDeployment {
  at: RedisAt;
  prefix: string;
}

/** One redis-server for the test. */
export async function deploySingleRedis(t: TestContext): Promise<RedisDeployment> {
  const server = await startRedis(t);
  return { at: { REDIS_URL: server.url }, prefix: server.prefix };
}

/** A Redis Cluster for the test: every key of a store must live in one slot per command. */
export async function deployRedisCluster(t: TestContext): Promise<RedisDeployment> {
  const cluster = await startRedisCluster(t);
  return { at: { REDIS_CLUSTER_NODES: cluster.nodes }, prefix: cluster.prefix };
}
