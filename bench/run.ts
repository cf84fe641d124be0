// The benchmark orchestrator (issue 4): runs every workload against the raw
// uWebSockets.js baseline (A, bench/baseline/raw-relay.mjs) and Switchboard (B),
// alternating A B A B A B in one invocation, and reports Switchboard as ratios
// to the baseline measured in the same run (the machines are shared and noisy:
// only same-run ratios mean anything; never put timings into tests).
//
//   npm run bench                 # 3 runs per system, medians with min–max
//   npm run bench -- --quick      # 1 run, short durations (< 3 min)
//   npm run bench -- --only W1,W3 # some workload groups
//   npm run bench -- --profile    # also profile Switchboard on W1 (node --cpu-prof) and summarise it
//   npm run bench -- --only profile
//
// bench/run.sh builds the project and bench/out/loadgen (C, epoll) first.
// Writes bench/out/results.json and bench/out/results.md.
//
// Workloads are a list of groups; a group says which servers it needs (one
// node, two nodes on Redis, a fresh node per measurement). Tunnel workloads
// join as another group later.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import jwt from 'jsonwebtoken';
import { perfMarkdown, summarizePerf, type PerfSummary } from './perf-summary';
import { profileMarkdown, summarizeProfile, type ProfileSummary } from './profile-summary';

const ROOT = path.resolve(__dirname, '..', '..');
const OUT = path.join(ROOT, 'bench', 'out');
const LOADGEN = path.join(OUT, 'loadgen');
const TOKENS = path.join(OUT, 'tokens');
const SWITCHBOARD_CLI = path.join(ROOT, 'dist', 'src', 'cli', 'index.js');
const RAW_RELAY = path.join(ROOT, 'bench', 'baseline', 'raw-relay.mjs');
const HOST = '127.0.0.1';
const JWT_SECRET = randomBytes(48).toString('base64');

// ── options ─────────────────────────────────────────────────────────────────

interface Options {
  quick: boolean;
  runs: number;
  warmupS: number;
  durationS: number;
  settleMs: number;
  idleConns: number;
  idleSources: number;
  idleSettleS: number;
  connectConcurrency: number;
  groups: Set<string> | undefined;
  profile: boolean;
  /** Window of the profiled W1 run (100 pairs, 64 B). */
  profileWindow: number;
}

function parseOptions(argv: string[]): Options {
  const quick = argv.includes('--quick');
  const value = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i === -1 ? undefined : argv[i + 1];
  };
  const only = value('only')
    ?.split(',')
    .map((s) => s.trim().toUpperCase())
    .filter((s) => s !== '');
  const profile = argv.includes('--profile') || (only?.includes('PROFILE') ?? false);
  return {
    quick,
    runs: Number(value('runs') ?? (quick ? 1 : 3)),
    warmupS: Number(value('warmup') ?? (quick ? 0.3 : 0.5)),
    durationS: Number(value('duration') ?? (quick ? 1 : 1.5)),
    settleMs: 300,
    idleConns: Number(value('idle-conns') ?? 15000),
    idleSources: 8,
    idleSettleS: quick ? 2 : 3,
    connectConcurrency: 64,
    groups: only === undefined ? undefined : new Set(only),
    profile,
    profileWindow: Number(value('profile-window') ?? 10),
  };
}

// ── child processes: every one is tracked and killed by PID on exit ─────────

const live = new Set<ChildProcess>();

function killAll(): void {
  for (const child of live) {
    if (child.pid === undefined) continue;
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });

class Child {
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
  ) {
    this.proc = spawn(command, args, { cwd: ROOT, env, stdio: [stdin, 'pipe', 'pipe'] });
    live.add(this.proc);
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
    if (this.proc.stdout !== null) createInterface({ input: this.proc.stdout }).on('line', (line) => this.listeners.forEach((l) => l(line)));
    this.proc.stderr?.on('data', (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString()).slice(-4000);
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

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (!live.has(this.proc)) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

function parseJson(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort(): Promise<number> {
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
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** Resident set size in bytes (VmRSS). */
function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match?.[1] === undefined) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]) * 1024;
}

// ── the systems under test ──────────────────────────────────────────────────

type SystemName = 'raw' | 'switchboard';
const SYSTEMS: readonly SystemName[] = ['raw', 'switchboard'];
const SYSTEM_LABEL: Record<SystemName, string> = { raw: 'baseline', switchboard: 'switchboard' };

interface Server {
  name: string;
  port: number;
  child: Child;
}

/** One system's servers for a group: `nodes[0]` serves receivers/members, `nodes[1]` (two-node) the senders. */
interface Deployment {
  system: SystemName;
  nodes: Server[];
}

let redis: { url: string; child: Child } | undefined;

async function ensureRedis(): Promise<string> {
  if (redis !== undefined) return redis.url;
  const port = await freePort();
  const child = new Child('redis-server', 'redis-server', ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no'], {
    PATH: process.env.PATH,
  });
  await child.waitFor((line) => (line.includes('Ready to accept connections') ? true : undefined), 10_000, 'ready line');
  redis = { url: `redis://${HOST}:${port}`, child };
  return redis.url;
}

async function startSwitchboard(name: string, redisUrl?: string, nodeArgs: string[] = []): Promise<Server> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PORT: '0',
    HOST,
    NODE_ID: name,
    JWT_SECRET,
    // `info` is needed for the "switchboard listening" line; the logs are read and discarded.
    LOG_LEVEL: 'info',
    RATE_LIMIT_POINTS: '1000000000',
    MAX_CONNECTIONS_PER_IP: '0',
    CONNECT_RATE_PER_IP: '0',
    MAX_CONNECTIONS: '0',
    DRAIN_SPREAD_MS: '0',
    SHUTDOWN_TIMEOUT_MS: '5000',
    ...(redisUrl === undefined ? {} : { REDIS_URL: redisUrl }),
  };
  const args = [...nodeArgs, SWITCHBOARD_CLI, 'serve'];
  const child = new Child(name, process.execPath, args, env);
  const port = await child.waitFor(
    (line) => {
      const rec = parseJson(line);
      return rec?.msg === 'switchboard listening' && typeof rec.port === 'number' ? rec.port : undefined;
    },
    20_000,
    '"switchboard listening" line',
  );
  return { name, port, child };
}

async function startRaw(name: string, redisUrl?: string): Promise<Server> {
  const args = [RAW_RELAY, '--host', HOST, '--port', '0', ...(redisUrl === undefined ? [] : ['--redis', redisUrl, '--prefix', 'raw:'])];
  const child = new Child(name, process.execPath, args, { PATH: process.env.PATH, HOME: process.env.HOME });
  const port = await child.waitFor(
    (line) => {
      const rec = parseJson(line);
      return rec?.msg === 'raw listening' && typeof rec.port === 'number' ? rec.port : undefined;
    },
    20_000,
    '"raw listening" line',
  );
  return { name, port, child };
}

type Topology = 'single' | 'two-node';

async function deploy(system: SystemName, topology: Topology): Promise<Deployment> {
  const redisUrl = topology === 'two-node' ? await ensureRedis() : undefined;
  const start = (name: string) => (system === 'raw' ? startRaw(name, redisUrl) : startSwitchboard(name, redisUrl));
  const nodes = topology === 'single' ? [await start(`${system}-1`)] : [await start(`${system}-recv`), await start(`${system}-send`)];
  return { system, nodes };
}

async function undeploy(d: Deployment): Promise<void> {
  await Promise.all(d.nodes.map((n) => n.child.stop()));
}

// ── tokens (Switchboard needs a JWT per connection) ─────────────────────────

interface TokenFiles {
  recv: string;
  send: string;
  members: string;
  pub: string;
  idle: string;
}

function writeTokens(idleCount: number): TokenFiles {
  mkdirSync(TOKENS, { recursive: true });
  const write = (file: string, users: string[]) => {
    const full = path.join(TOKENS, file);
    const lines = users.map((user) => jwt.sign({ sub: user, device_id: 'd' }, JWT_SECRET, { algorithm: 'HS256', expiresIn: '6h' }));
    writeFileSync(full, `${lines.join('\n')}\n`);
    return full;
  };
  const range = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  return {
    recv: write('recv.txt', range('r', 1000)),
    send: write('send.txt', range('s', 1000)),
    members: write('members.txt', range('m', 1000)),
    pub: write('pub.txt', ['pub']),
    idle: write('idle.txt', range('i', idleCount)),
  };
}

// ── loadgen ─────────────────────────────────────────────────────────────────

type Measurement = Record<string, number | string>;

/** Runs loadgen to completion; samples the servers' CPU between its "measure" line and its result line. */
async function runLoadgen(args: string[], servers: Server[], timeoutS: number, onMeasure?: () => void): Promise<Measurement> {
  const child = new Child('loadgen', LOADGEN, args, { PATH: process.env.PATH });
  let cpu0: number[] = [];
  let redisCpu0 = NaN;
  let redisCpu = NaN;
  const redisPid = servers.length > 1 ? redis?.child.pid : undefined;
  let t0 = 0;
  let result: Record<string, unknown> | undefined;
  let serverCpu: number[] = [];
  child.onLine((line) => {
    const rec = parseJson(line);
    if (rec === undefined) return;
    if (rec.phase === 'measure') {
      t0 = performance.now();
      cpu0 = servers.map((s) => cpuSeconds(s.child.pid));
      if (redisPid !== undefined) redisCpu0 = cpuSeconds(redisPid);
      onMeasure?.();
    } else {
      const wall = (performance.now() - t0) / 1000;
      serverCpu = servers.map((s, i) => (cpuSeconds(s.child.pid) - (cpu0[i] ?? NaN)) / wall);
      if (redisPid !== undefined) redisCpu = (cpuSeconds(redisPid) - redisCpu0) / wall;
      result = rec;
    }
  });
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), timeoutS * 1000);
  const code = await child.exited;
  clearTimeout(timer);
  if (result === undefined) throw new Error(`loadgen exited (${code}) without a result; stderr: ${child.stderr}`);
  if (typeof result.error === 'string') throw new Error(`loadgen: ${result.error}`);
  const m: Measurement = {};
  for (const [k, v] of Object.entries(result)) if (typeof v === 'number' || typeof v === 'string') m[k] = v;
  serverCpu.forEach((cpu, i) => (m[`server_cpu_${i}`] = cpu));
  if (Number.isFinite(redisCpu)) m.redis_cpu = redisCpu;
  return m;
}

// ── workloads ───────────────────────────────────────────────────────────────

/** `ratio`: switchboard/baseline of the medians must be ≥ min. `max`: switchboard's median must be ≤ value. */
type Target = { kind: 'ratio'; min: number } | { kind: 'max'; value: number };

interface MetricSpec {
  key: string;
  label: string;
  unit: 'msg/s' | 'µs' | 'B' | 'conn/s';
  target?: Target;
}

interface RoundContext {
  options: Options;
  tokens: TokenFiles;
  /** This round's measurements so far, by workload id then system. */
  results: Map<string, Partial<Record<SystemName, Measurement>>>;
}

interface Workload {
  id: string;
  title: string;
  params: Record<string, number | string>;
  metrics: MetricSpec[];
  measure(d: Deployment, ctx: RoundContext): Promise<Measurement>;
}

interface Group {
  name: string;
  title: string;
  topology: Topology;
  /** Start new servers for every measurement (memory, connect storms) instead of once per round. */
  freshPerMeasurement: boolean;
  workloads: Workload[];
}

/** loadgen arguments that make it speak each system's protocol. */
function protocolArgs(system: SystemName, kind: 'relay' | 'fanout' | 'idle' | 'connect', t: TokenFiles): string[] {
  if (system === 'raw') {
    switch (kind) {
      case 'relay':
        return ['--recv-path', '/ws?id=r{i}', '--send-path', '/ws?id=s{i}&to=r{i}', '--send-fmt', '{p}', '--marker', ''];
      case 'fanout':
        return ['--recv-path', '/ws?sub=bench', '--send-path', '/ws?pub=bench', '--send-fmt', '{p}', '--marker', ''];
      case 'idle':
        return ['--recv-path', '/ws?id=i{i}'];
      case 'connect':
        return ['--recv-path', '/ws'];
    }
  }
  const tokenPath = '/ws?token={tok}';
  switch (kind) {
    case 'relay':
      return [
        ...['--recv-path', tokenPath, '--recv-tokens', t.recv, '--send-path', tokenPath, '--send-tokens', t.send],
        ...['--send-fmt', '{"type":"message","to":"r{i}","payload":"{p}"}', '--marker', '"payload":"'],
      ];
    case 'fanout':
      return [
        ...['--recv-path', tokenPath, '--recv-tokens', t.members, '--send-path', tokenPath, '--send-tokens', t.pub],
        ...['--join-fmt', '{"type":"subscribe","room":"bench"}', '--ready-marker', '"type":"subscribed"'],
        ...['--send-fmt', '{"type":"publish","room":"bench","payload":"{p}"}', '--marker', '"payload":"'],
      ];
    case 'idle':
    case 'connect':
      return ['--recv-path', tokenPath, '--recv-tokens', t.idle];
  }
}

const LATENCY: MetricSpec[] = [
  { key: 'p50_us', label: 'p50 latency', unit: 'µs' },
  { key: 'p99_us', label: 'p99 latency', unit: 'µs' },
];

/** Settling after setup matters only when receivers register asynchronously (Redis subscriptions, room joins). */
function timing(o: Options, settle: boolean): string[] {
  return ['--warmup', String(o.warmupS), '--duration', String(o.durationS), '--settle-ms', String(settle ? o.settleMs : 0)];
}

function relayWorkload(group: 'W1' | 'W2', pairs: number, window: number, size: number): Workload {
  const minRatio = group === 'W2' ? 0.8 : window === 1 ? 0.75 : 0.6;
  const sizeLabel = size >= 1024 ? `${size / 1024} KiB` : `${size} B`;
  return {
    id: `${group}-p${pairs}-w${window}-s${size}`,
    title: `${group} ${pairs} pairs, window ${window}, ${sizeLabel}`,
    params: { pairs, window, size },
    metrics: [{ key: 'msgs_per_s', label: 'messages/s', unit: 'msg/s', target: { kind: 'ratio', min: minRatio } }, ...LATENCY],
    measure: (d, ctx) => {
      const [recvNode, sendNode] = d.nodes;
      if (recvNode === undefined) throw new Error('no server');
      const o = ctx.options;
      return runLoadgen(
        [
          ...['--mode', 'relay', '--port', String(recvNode.port), '--port2', String((sendNode ?? recvNode).port)],
          ...['--count', String(pairs), '--window', String(window), '--size', String(size)],
          ...timing(o, group === 'W2'),
          ...protocolArgs(d.system, 'relay', ctx.tokens),
        ],
        d.nodes,
        120,
      );
    },
  };
}

/** p99 at half of Switchboard's max rate (W1, 100 pairs, 64 B), this round; both systems at the same rate. */
function halfRateWorkload(): Workload {
  const basis = ['W1-p100-w10-s64', 'W1-p100-w1-s64'];
  return {
    id: 'W1-rate-half-max',
    title: 'W1 100 pairs, 64 B, open loop at ½ Switchboard max rate',
    params: { pairs: 100, size: 64 },
    metrics: [
      { key: 'msgs_per_s', label: 'offered rate (msgs/s)', unit: 'msg/s' },
      { key: 'p50_us', label: 'p50 latency', unit: 'µs' },
      { key: 'p99_us', label: 'p99 latency', unit: 'µs', target: { kind: 'max', value: 5000 } },
    ],
    measure: (d, ctx) => {
      const max = Math.max(0, ...basis.map((id) => Number(ctx.results.get(id)?.switchboard?.msgs_per_s ?? 0)));
      if (!(max > 0)) throw new Error('needs W1 100-pair 64 B results for Switchboard from this round');
      const node = d.nodes[0];
      if (node === undefined) throw new Error('no server');
      return runLoadgen(
        [
          ...['--mode', 'relay', '--port', String(node.port), '--count', '100', '--size', '64', '--rate', String(Math.round(max / 2))],
          ...timing(ctx.options, false),
          ...protocolArgs(d.system, 'relay', ctx.tokens),
        ],
        d.nodes,
        120,
      );
    },
  };
}

function fanoutWorkload(window: number): Workload {
  const members = 1000;
  return {
    id: `W3-m${members}-w${window}`,
    title: `W3 room fan-out, 1 → ${members} members, window ${window}, 64 B`,
    params: { members, window, size: 64 },
    metrics: [
      { key: 'msgs_per_s', label: 'deliveries/s', unit: 'msg/s', target: { kind: 'ratio', min: window === 1 ? 0.7 : 0.5 } },
      ...LATENCY,
    ],
    measure: (d, ctx) => {
      const node = d.nodes[0];
      if (node === undefined) throw new Error('no server');
      return runLoadgen(
        [
          ...['--mode', 'fanout', '--port', String(node.port), '--count', String(members), '--window', String(window), '--size', '64'],
          ...timing(ctx.options, true),
          ...protocolArgs(d.system, 'fanout', ctx.tokens),
        ],
        d.nodes,
        120,
      );
    },
  };
}

function idleWorkload(conns: number): Workload {
  return {
    id: `W4-idle-${conns}`,
    title: `W4 idle authenticated connections, ${conns}`,
    params: { conns },
    metrics: [{ key: 'rss_per_conn', label: 'RSS per connection', unit: 'B', target: { kind: 'max', value: 2048 } }],
    measure: async (d, ctx) => {
      const node = d.nodes[0];
      if (node === undefined) throw new Error('no server');
      const o = ctx.options;
      await sleep(1000);
      const before = rssBytes(node.child.pid);
      const args = [
        ...['--mode', 'idle', '--port', String(node.port), '--count', String(conns), '--sources', String(o.idleSources)],
        ...['--hold-s', '120', '--setup-timeout', '90'],
        ...protocolArgs(d.system, 'idle', ctx.tokens),
      ];
      const child = new Child('loadgen-idle', LOADGEN, args, { PATH: process.env.PATH }, 'pipe');
      try {
        const ready = await child.waitFor(
          (line) => {
            const rec = parseJson(line);
            if (typeof rec?.error === 'string') throw new Error(`loadgen: ${rec.error}`);
            return typeof rec?.ready === 'number' ? rec : undefined;
          },
          100_000,
          'ready line',
        );
        await sleep(o.idleSettleS * 1000);
        const after = rssBytes(node.child.pid);
        return {
          rss_per_conn: (after - before) / conns,
          rss_before_mb: before / 2 ** 20,
          rss_after_mb: after / 2 ** 20,
          setup_s: Number(ready.setup_s),
          connects_per_s_setup: conns / Number(ready.setup_s),
        };
      } finally {
        child.proc.stdin?.end();
        const timer = setTimeout(() => child.proc.kill('SIGKILL'), 10_000);
        await child.exited;
        clearTimeout(timer);
      }
    },
  };
}

function connectWorkload(): Workload {
  return {
    id: 'W5-connect',
    title: 'W5 connect + JWT + welcome + close',
    params: {},
    metrics: [{ key: 'connects_per_s', label: 'connects/s', unit: 'conn/s', target: { kind: 'ratio', min: 0.7 } }],
    measure: (d, ctx) => {
      const node = d.nodes[0];
      if (node === undefined) throw new Error('no server');
      const o = ctx.options;
      return runLoadgen(
        [
          ...['--mode', 'connect', '--port', String(node.port), '--concurrency', String(o.connectConcurrency), '--sources', '32'],
          ...['--warmup', String(o.warmupS), '--duration', String(o.durationS)],
          ...protocolArgs(d.system, 'connect', ctx.tokens),
        ],
        d.nodes,
        60,
      );
    },
  };
}

function groups(o: Options): Group[] {
  const matrix = (group: 'W1' | 'W2') => {
    const list: Workload[] = [];
    for (const pairs of [100, 1000]) for (const window of [1, 10]) for (const size of [64, 1024]) list.push(relayWorkload(group, pairs, window, size));
    return list;
  };
  return [
    { name: 'W1', title: 'direct relay, one node', topology: 'single', freshPerMeasurement: false, workloads: [...matrix('W1'), halfRateWorkload()] },
    { name: 'W2', title: 'direct relay, two nodes through Redis', topology: 'two-node', freshPerMeasurement: false, workloads: matrix('W2') },
    { name: 'W3', title: 'room fan-out', topology: 'single', freshPerMeasurement: true, workloads: [fanoutWorkload(1), fanoutWorkload(10)] },
    { name: 'W4', title: 'memory per idle connection', topology: 'single', freshPerMeasurement: true, workloads: [idleWorkload(o.idleConns)] },
    { name: 'W5', title: 'connection rate', topology: 'single', freshPerMeasurement: false, workloads: [connectWorkload()] },
    // Tunnel workloads (T1…) join here as further groups.
  ];
}

// ── statistics and formatting ───────────────────────────────────────────────

interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
}

function stat(values: number[]): Stat | undefined {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const mid = Math.floor(v.length / 2);
  const median = v.length % 2 === 1 ? (v[mid] ?? NaN) : ((v[mid - 1] ?? NaN) + (v[mid] ?? NaN)) / 2;
  return { median, min: v[0] ?? NaN, max: v[v.length - 1] ?? NaN, n: v.length };
}

function fmt(value: number, unit: MetricSpec['unit']): string {
  if (!Number.isFinite(value)) return '—';
  switch (unit) {
    case 'µs':
      return value >= 10_000 ? `${(value / 1000).toFixed(1)} ms` : value >= 1000 ? `${(value / 1000).toFixed(2)} ms` : `${Math.round(value)} µs`;
    case 'B':
      return `${Math.round(value).toLocaleString('en-US')} B`;
    default:
      return value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(1);
  }
}

function fmtStat(s: Stat | undefined, unit: MetricSpec['unit']): string {
  if (s === undefined) return 'failed';
  if (s.n === 1) return fmt(s.median, unit);
  return `${fmt(s.median, unit)} (${fmt(s.min, unit)}–${fmt(s.max, unit)})`;
}

function targetText(t: Target | undefined, unit: MetricSpec['unit']): string {
  if (t === undefined) return '';
  return t.kind === 'ratio' ? `≥ ${t.min}×` : `≤ ${fmt(t.value, unit)}`;
}

interface MetricResult {
  key: string;
  label: string;
  unit: string;
  baseline?: Stat;
  switchboard?: Stat;
  ratio?: number;
  target?: Target;
  met?: boolean;
}

interface WorkloadResult {
  id: string;
  group: string;
  title: string;
  params: Record<string, number | string>;
  runs: Record<SystemName, (Measurement | { failed: string })[]>;
  metrics: MetricResult[];
}

function evaluate(w: Workload, group: string, runs: WorkloadResult['runs']): WorkloadResult {
  const values = (system: SystemName, key: string) =>
    runs[system].flatMap((m) => (!('failed' in m) && typeof m[key] === 'number' ? [m[key]] : []));
  const metrics = w.metrics.map((spec): MetricResult => {
    const baseline = stat(values('raw', spec.key));
    const switchboard = stat(values('switchboard', spec.key));
    const ratio = baseline !== undefined && switchboard !== undefined && baseline.median !== 0 ? switchboard.median / baseline.median : undefined;
    let met: boolean | undefined;
    if (spec.target?.kind === 'ratio') met = ratio === undefined ? false : ratio >= spec.target.min;
    else if (spec.target?.kind === 'max') met = switchboard === undefined ? false : switchboard.median <= spec.target.value;
    return { key: spec.key, label: spec.label, unit: spec.unit, baseline, switchboard, ratio, target: spec.target, met };
  });
  return { id: w.id, group, title: w.title, params: w.params, runs, metrics };
}

function machine(): Record<string, string | number> {
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const version = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args).toString().split('\n')[0]?.trim() ?? '';
    } catch {
      return 'unknown';
    }
  };
  return {
    nproc: os.availableParallelism(),
    cpu: /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown',
    memory_gib: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    redis: version('redis-server', ['--version']),
    gcc: version('gcc', ['--version']),
    fd_limit: version('sh', ['-c', 'ulimit -n']),
  };
}

function median(list: number[]): number {
  return stat(list)?.median ?? NaN;
}

function markdown(results: WorkloadResult[], meta: Record<string, unknown>, m: Record<string, string | number>, profile?: string): string {
  const lines: string[] = [
    '# Switchboard benchmark',
    '',
    `${String(meta.mode)} run, ${String(meta.runs)} run(s) per system alternating baseline/switchboard, warm-up ${String(meta.warmup_s)} s, ` +
      `measured ${String(meta.duration_s)} s per run; started ${String(meta.started)}, took ${String(meta.took_s)} s.`,
    '',
    `Machine: ${m.nproc} CPUs (${m.cpu}), ${m.memory_gib} GiB, ${m.kernel}; node ${m.node}; ${m.redis}; ${m.gcc}; fd limit ${m.fd_limit}; ` +
      `load average ${String(meta.load_start)} at the start, ${String(meta.load_end)} at the end (other work on a shared machine shows here).`,
    '',
    'Baseline: bench/baseline/raw-relay.mjs (uWebSockets.js, no JSON, no auth; two nodes: batched PUBLISH per destination per event-loop turn). ' +
      'Ratio = switchboard median / baseline median (for latency and memory, lower is better). ' +
      'Load: bench/loadgen.c (one epoll thread).',
    '',
    '| workload | metric | baseline median (min–max) | switchboard median (min–max) | ratio | target | met? |',
    '|---|---|---:|---:|---:|---|:-:|',
  ];
  for (const r of results)
    for (const x of r.metrics) {
      const unit = x.unit as MetricSpec['unit'];
      const met = x.met === undefined ? '' : x.met ? 'yes' : '**no**';
      lines.push(
        `| ${r.title} | ${x.label} | ${fmtStat(x.baseline, unit)} | ${fmtStat(x.switchboard, unit)} | ${x.ratio === undefined ? '—' : `${x.ratio.toFixed(2)}×`} | ${targetText(x.target, unit)} | ${met} |`,
      );
    }
  lines.push(
    '',
    '## Diagnostics',
    '',
    'Median CPU use during the measured window (1.0 = one core; the machine has ' +
      `${m.nproc}) of the server process(es) (two nodes: receiving node + sending node), of Redis and of the load generator. ` +
      'A server near 1.0 is saturated; a load generator near 1.0 means the baseline figure is a lower bound. ' +
      'Lost = messages that never arrived (the sender refilled its window after a stall).',
    '',
    '| workload | system | server CPU | Redis CPU | loadgen CPU | lost | errors | failed runs | notes |',
    '|---|---|---|---:|---:|---:|---:|---:|---|',
  );
  for (const r of results)
    for (const system of SYSTEMS) {
      const ok = r.runs[system].filter((m): m is Measurement => !('failed' in m));
      const num = (key: string) => ok.flatMap((m) => (typeof m[key] === 'number' ? [m[key]] : []));
      const cpu = [0, 1]
        .map((i) => median(num(`server_cpu_${i}`)))
        .filter((v) => Number.isFinite(v))
        .map((v) => v.toFixed(2))
        .join(' + ');
      const lg = median(num('loadgen_cpu'));
      const rc = median(num('redis_cpu'));
      const sum = (key: string) => num(key).reduce((a, b) => a + b, 0);
      const failed = r.runs[system].length - ok.length;
      const notes: string[] = [];
      const before = median(num('rss_before_mb'));
      const after = median(num('rss_after_mb'));
      if (Number.isFinite(before)) notes.push(`RSS ${before.toFixed(0)} → ${after.toFixed(0)} MiB`);
      const setup = median(num('connects_per_s_setup'));
      if (Number.isFinite(setup)) notes.push(`opened at ${fmt(setup, 'conn/s')}/s`);
      const p999 = median(num('p999_us'));
      if (Number.isFinite(p999) && p999 > 0) notes.push(`p99.9 ${fmt(p999, 'µs')}`);
      const connFailures = sum('failures');
      if (connFailures > 0) notes.push(`${connFailures} failed connects`);
      lines.push(
        `| ${r.title} | ${SYSTEM_LABEL[system]} | ${cpu === '' ? '—' : cpu} | ${Number.isFinite(rc) ? rc.toFixed(2) : '—'} | ${Number.isFinite(lg) ? lg.toFixed(2) : '—'} | ${sum('lost')} | ${sum('errors')} | ${failed} | ${notes.join('; ')} |`,
      );
    }
  const failures = results.flatMap((r) =>
    SYSTEMS.flatMap((s) => r.runs[s].flatMap((m, i) => ('failed' in m ? [`- ${r.title}, ${SYSTEM_LABEL[s]} run ${i + 1}: ${m.failed}`] : []))),
  );
  if (failures.length > 0) lines.push('', '## Failed runs', '', ...failures);
  if (profile !== undefined) lines.push('', '## Profile', '', profile);
  return `${lines.join('\n')}\n`;
}

// ── profile (Switchboard, W1 100 pairs, 64 B, window 10 or --profile-window) ─

interface ProfileOutput {
  md: string;
  cpuprofile: ProfileSummary;
  perf?: PerfSummary;
}

function perfWorks(): boolean {
  try {
    execFileSync('perf', ['record', '-q', '-o', '/dev/null', '--', 'true'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * Two runs of the same workload: one under `node --cpu-prof` (JavaScript view), one under
 * `perf record -g` with `--perf-basic-prof` (everything: V8 runtime, GC, kernel), when perf works.
 */
async function profileSwitchboard(o: Options, tokens: TokenFiles): Promise<ProfileOutput> {
  const dir = path.join(OUT, 'profile');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const durationS = o.quick ? 3 : 5;
  const args = (port: number) => [
    ...['--mode', 'relay', '--port', String(port), '--count', '100', '--window', String(o.profileWindow), '--size', '64'],
    ...['--warmup', '1', '--duration', String(durationS), '--settle-ms', '0'],
    ...protocolArgs('switchboard', 'relay', tokens),
  ];
  const title = `Switchboard, W1 100 pairs, window ${o.profileWindow}, 64 B`;

  const server = await startSwitchboard('sb-cpuprof', undefined, ['--cpu-prof', '--cpu-prof-dir', dir]);
  let result: Measurement;
  try {
    result = await runLoadgen(args(server.port), [server], 120);
  } finally {
    await server.child.stop(15_000); // a graceful exit writes the profile (DRAIN_SPREAD_MS=0: at once)
  }
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (file === undefined) throw new Error('node --cpu-prof wrote no profile');
  const cpuprofile = summarizeProfile(path.join(dir, file), ROOT);
  const parts = [
    profileMarkdown(cpuprofile, `${title}, node --cpu-prof: ${fmt(Number(result.msgs_per_s), 'msg/s')} msg/s (bench/out/profile/${file})`),
    'The V8 profile sees JavaScript frames only: native work done on behalf of a frame ' +
      '(V8 JSON and string runtime, GC, the kernel send path) is charged to the last JavaScript frame, ' +
      'so a native call such as uWS `send` can look larger than it is. The perf view below counts everything.',
    '',
  ];
  process.stderr.write(`cpu profile written to bench/out/profile/${file}\n`);

  let perf: PerfSummary | undefined;
  if (perfWorks()) {
    const data = path.join(dir, 'perf.data');
    // --perf-basic-prof names JIT frames for perf (/tmp/perf-<pid>.map) and makes V8 open a log file: keep it in bench/out.
    const v8log = [`--logfile=${path.join(dir, 'v8.log')}`, '--no-logfile-per-isolate'];
    const traced = await startSwitchboard('sb-perf', undefined, ['--perf-basic-prof', ...v8log]);
    let recorder: Child | undefined;
    try {
      const start = () => {
        recorder = new Child('perf', 'perf', ['record', '-q', '-F', '999', '-g', '-p', String(traced.child.pid), '-o', data, '--', 'sleep', String(durationS)], {
          PATH: process.env.PATH,
        });
      };
      result = await runLoadgen(args(traced.port), [traced], 120, start);
      await recorder?.exited;
      perf = summarizePerf(data);
      parts.push(perfMarkdown(perf, `${title}, perf record -g (measured window): ${fmt(Number(result.msgs_per_s), 'msg/s')} msg/s (bench/out/profile/perf.data)`));
    } finally {
      await recorder?.stop();
      await traced.child.stop(15_000);
      rmSync(`/tmp/perf-${traced.child.pid}.map`, { force: true });
    }
  } else parts.push('(perf is not available here: no native profile.)', '');
  return { md: parts.join('\n'), cpuprofile, perf };
}

// ── main ────────────────────────────────────────────────────────────────────

function describe(m: Measurement): string {
  const parts: string[] = [];
  if (typeof m.msgs_per_s === 'number') parts.push(`${fmt(m.msgs_per_s, 'msg/s')} msg/s`);
  if (typeof m.p50_us === 'number') parts.push(`p50 ${fmt(m.p50_us, 'µs')}`);
  if (typeof m.p99_us === 'number') parts.push(`p99 ${fmt(m.p99_us, 'µs')}`);
  if (typeof m.rss_per_conn === 'number') parts.push(`${fmt(m.rss_per_conn, 'B')}/conn`);
  if (typeof m.connects_per_s === 'number') parts.push(`${fmt(m.connects_per_s, 'conn/s')} conn/s`);
  const cpu = [m.server_cpu_0, m.server_cpu_1].filter((v): v is number => typeof v === 'number').map((v) => v.toFixed(2));
  if (cpu.length > 0) parts.push(`server cpu ${cpu.join('+')}`);
  if (typeof m.redis_cpu === 'number') parts.push(`redis cpu ${m.redis_cpu.toFixed(2)}`);
  if (typeof m.loadgen_cpu === 'number') parts.push(`loadgen cpu ${m.loadgen_cpu.toFixed(2)}`);
  if (typeof m.lost === 'number' && m.lost > 0) parts.push(`lost ${m.lost}`);
  if (typeof m.errors === 'number' && m.errors > 0) parts.push(`errors ${m.errors} (${String(m.first_error)})`);
  return parts.join(', ');
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  if (!existsSync(LOADGEN)) throw new Error(`${LOADGEN} is missing; run bench/run.sh (it compiles bench/loadgen.c)`);
  if (!existsSync(SWITCHBOARD_CLI)) throw new Error(`${SWITCHBOARD_CLI} is missing; run npm run build`);
  mkdirSync(OUT, { recursive: true });
  const started = new Date();
  const loadStart = os.loadavg()[0]?.toFixed(2) ?? '?';
  const t0 = performance.now();
  const log = (line: string) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
  const tokens = writeTokens(Math.max(o.idleConns, 1000));
  const selected = groups(o).filter((g) => o.groups === undefined || o.groups.has(g.name));
  log(`${o.quick ? 'quick' : 'full'} run: ${o.runs} run(s) per system, groups ${selected.map((g) => g.name).join(' ') || '(none)'}`);

  const results: WorkloadResult[] = [];
  try {
    for (const group of selected) {
      const runs = new Map<string, WorkloadResult['runs']>(group.workloads.map((w) => [w.id, { raw: [], switchboard: [] }]));
      for (let round = 1; round <= o.runs; round++) {
        const ctx: RoundContext = { options: o, tokens, results: new Map() };
        const record = (w: Workload, system: SystemName, m: Measurement | { failed: string }) => {
          runs.get(w.id)?.[system].push(m);
          if (!('failed' in m)) ctx.results.set(w.id, { ...ctx.results.get(w.id), [system]: m });
          log(`${w.title} — ${SYSTEM_LABEL[system]} run ${round}/${o.runs}: ${'failed' in m ? `FAILED: ${m.failed}` : describe(m)}`);
        };
        const measure = async (w: Workload, d: Deployment) => {
          try {
            record(w, d.system, await w.measure(d, ctx));
          } catch (error) {
            record(w, d.system, { failed: error instanceof Error ? error.message : String(error) });
          }
          await sleep(100); // let the server finish closing the run's sockets
        };
        if (group.freshPerMeasurement) {
          for (const w of group.workloads)
            for (const system of SYSTEMS) {
              const d = await deploy(system, group.topology);
              try {
                await measure(w, d);
              } finally {
                await undeploy(d);
              }
            }
          continue;
        }
        // Both systems stay up for the round (an idle server costs nothing); each workload runs A then B.
        const deployments: Deployment[] = [];
        try {
          for (const system of SYSTEMS) deployments.push(await deploy(system, group.topology));
          for (const w of group.workloads) for (const d of deployments) await measure(w, d);
        } finally {
          await Promise.all(deployments.map(undeploy));
        }
      }
      for (const w of group.workloads) {
        const r = runs.get(w.id);
        if (r !== undefined) results.push(evaluate(w, group.name, r));
      }
    }
  } finally {
    await redis?.child.stop();
  }

  let profile: ProfileOutput | undefined;
  if (o.profile) {
    log('profiling Switchboard on W1 (node --cpu-prof)');
    profile = await profileSwitchboard(o, tokens);
  }

  const took = (performance.now() - t0) / 1000;
  const meta = {
    mode: o.quick ? 'quick' : 'full',
    runs: o.runs,
    warmup_s: o.warmupS,
    duration_s: o.durationS,
    started: started.toISOString(),
    took_s: Math.round(took),
    load_start: loadStart,
    load_end: os.loadavg()[0]?.toFixed(2) ?? '?',
  };
  const m = machine();
  writeFileSync(path.join(OUT, 'results.json'), `${JSON.stringify({ meta, machine: m, workloads: results, profile: profile === undefined ? undefined : { cpuprofile: profile.cpuprofile, perf: profile.perf } }, null, 2)}\n`);
  const md = markdown(results, meta, m, profile?.md);
  writeFileSync(path.join(OUT, 'results.md'), md);
  process.stdout.write(md);
  log(`done in ${Math.round(took)} s: bench/out/results.md, bench/out/results.json`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    killAll();
    process.exit(1);
  },
);
