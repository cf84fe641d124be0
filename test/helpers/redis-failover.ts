// A Redis Sentinel deployment that can fail over: one master, one replica
// and N sentinels (quorum 1) on free loopback ports, in a private temp dir.
// `failover('command')` asks the sentinel (SENTINEL FAILOVER), `failover('kill')`
// SIGKILLs the master and lets the sentinels notice (down-after 1 s); both
// resolve once the sentinels name the replica as master and it answers as one.
// Every process is killed by PID in teardown. Readiness is polled, never slept.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { eventually } from './eventually';
import { freePort } from './redis';
import { killAndWait, redisCli, redisCliLines, sentinelConf } from './redis-topologies';

const HOST = '127.0.0.1';
const NAME = 'mymaster';

export interface FailoverDeployment {
  /** `host:port,...` of the sentinels, for REDIS_SENTINELS. */
  sentinels: string;
  /** The master group name, for REDIS_SENTINEL_NAME. */
  name: string;
  prefix: string;
  /** The port of the current master (changes with each failover). */
  readonly masterPort: number;
  /** Promotes the replica; resolves when the sentinels and the new master agree. */
  failover(how: 'command' | 'kill', timeoutMs?: number): Promise<void>;
}

let prefixSeq = 0;

export async function startRedisFailover(t: TestContext, sentinelCount = 1): Promise<FailoverDeployment> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-rfailover-'));
  const children = new Map<number, ChildProcess>();
  t.after(async () => {
    await Promise.all([...children.values()].map(killAndWait));
    rmSync(dir, { recursive: true, force: true });
  });
  const used = new Set<number>();
  const port = async () => {
    let p = await freePort();
    while (used.has(p)) p = await freePort();
    used.add(p);
    return p;
  };
  const launch = (args: string[], logName: string, key: number) => {
    const child = spawn('redis-server', [...args, '--logfile', join(dir, logName)], { stdio: 'ignore' });
    if (child.pid === undefined) throw new Error(`could not spawn redis-server ${args.join(' ')}`);
    children.set(key, child);
  };
  const server = (p: number) => ['--port', String(p), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', dir];

  const ports = [await port(), await port()];
  const [first, second] = ports as [number, number];
  launch(server(first), `redis-${first}.log`, first);
  launch([...server(second), '--replicaof', HOST, String(first)], `redis-${second}.log`, second);
  await eventually(async () => {
    const info = await redisCli(['-h', HOST, '-p', String(second), 'info', 'replication'], 2000);
    if (!/master_link_status:up/.test(info)) throw new Error(`replica ${second} not in sync:\n${info}`);
  }, 20_000, 50);

  const sentinelPorts: number[] = [];
  for (let i = 0; i < sentinelCount; i++) {
    const p = await port();
    sentinelPorts.push(p);
    launch([sentinelConf(dir, p, NAME, first, 1000), '--sentinel'], `sentinel-${p}.log`, p);
  }
  let masterPort = first;
  // The sentinels must know the replica before a failover can pick it.
  const agree = async (expected: number) => {
    for (const p of sentinelPorts) {
      const addr = await redisCliLines(p, 'sentinel', 'get-master-addr-by-name', NAME);
      if (addr[1] !== String(expected)) throw new Error(`sentinel ${p} reports master ${addr.join(':')}, expected ${expected}`);
      const replicas = await redisCliLines(p, 'sentinel', 'replicas', NAME);
      if (expected === first && !replicas.includes(String(second))) throw new Error(`sentinel ${p} does not know the replica yet`);
    }
    const role = await redisCliLines(expected, 'role');
    if (role[0] !== 'master') throw new Error(`${expected} answers role ${role[0]}`);
  };
  await eventually(() => agree(first), 20_000, 50);

  return {
    sentinels: sentinelPorts.map((p) => `${HOST}:${p}`).join(','),
    name: NAME,
    prefix: `f${process.pid}-${++prefixSeq}:`,
    get masterPort() {
      return masterPort;
    },
    async failover(how, timeoutMs = 30_000) {
      const next = masterPort === first ? second : first;
      if (how === 'command') await redisCli(['-h', HOST, '-p', String(sentinelPorts[0]), 'sentinel', 'failover', NAME]);
      else {
        const child = children.get(masterPort);
        if (child !== undefined) await killAndWait(child);
      }
      await eventually(() => agree(next), timeoutMs, 50);
      masterPort = next;
    },
  };
}
