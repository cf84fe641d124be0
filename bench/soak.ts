// `npm run soak [-- --cycles N --concurrency K --redis]`: connection churn with
// messaging against a real node (or two on Redis), watching its memory.
//
// Each cycle is one new user's whole life: connect with a fresh JWT → welcome →
// one `message` to a peer that stays connected → its `ack` → close. K cycles run
// at once; client source addresses rotate over 127.0.0.2–127.0.0.251 so churn
// does not exhaust one address's ephemeral ports. With --redis the cycling
// clients use node A and the peers node B, so every message crosses the bus.
//
// Every --sample-every cycles it reads the node's VmRSS from /proc and its V8
// heap from /metrics (prom-client's nodejs_heap_size_used_bytes; no --expose-gc,
// no debug endpoint), and with --redis Redis's used_memory. It reports the
// figures after warm-up against the end, the growth, cycles/s, and with --redis
// the keys under the run's prefix once every session has closed.
// Samples: bench/out/soak.json.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import WebSocket from 'ws';
import { HOST, OUT } from './orchestrator/paths';
import { rssBytes, sleep } from './orchestrator/processes';
import { ensureRedis, startSwitchboard, stopRedis, type Server } from './orchestrator/systems';
import { JWT_SECRET } from './orchestrator/tokens';

interface Options {
  cycles: number;
  concurrency: number;
  sampleEvery: number;
  warmup: number;
  redis: boolean;
  traceGc: boolean;
  nodeArgs: string[];
  env: Record<string, string>;
}

interface Sample {
  cycle: number;
  seconds: number;
  rss: number[];
  heapUsed: number[];
  heapTotal: number[];
  external: number[];
  redisUsed?: number;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { cycles: 1_000_000, concurrency: 50, sampleEvery: 0, warmup: 0, redis: false, traceGc: true, nodeArgs: [], env: {} };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    if (flag === '--cycles') o.cycles = Number(value());
    else if (flag === '--concurrency') o.concurrency = Number(value());
    else if (flag === '--sample-every') o.sampleEvery = Number(value());
    else if (flag === '--warmup') o.warmup = Number(value());
    else if (flag === '--redis') o.redis = true;
    else if (flag === '--no-trace-gc') o.traceGc = false;
    else if (flag === '--node-arg') o.nodeArgs.push(value());
    else if (flag === '--env') {
      const [k, ...v] = value().split('=');
      if (k !== undefined) o.env[k] = v.join('=');
    } else throw new Error(`unknown flag ${flag} (flags: --cycles N --concurrency K --sample-every N --warmup N --redis --no-trace-gc --node-arg FLAG --env K=V)`);
  }
  if (o.sampleEvery <= 0) o.sampleEvery = Math.max(100, Math.round(o.cycles / 50));
  // The issue's first measurement took cycle 2,000 as the end of warm-up.
  if (o.warmup <= 0) o.warmup = Math.min(Math.round(o.cycles / 2), Math.max(2000, Math.round(o.cycles / 20)));
  return o;
}

/** A frame's text (ws hands text frames over as Buffers by default). */
const text = (data: WebSocket.RawData): string =>
  (Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)).toString('utf8');

const token = (user: string) => jwt.sign({ sub: user, device_id: 'd' }, JWT_SECRET, { algorithm: 'HS256', expiresIn: '6h' });

function sourceAddress(n: number): string {
  return `127.0.0.${2 + (n % 250)}`;
}

/** A peer that stays connected and receives the cycles' messages. */
function openPeer(port: number, user: string, delivered: { count: number }): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${HOST}:${port}/ws?token=${token(user)}`, { perMessageDeflate: false });
    ws.on('message', (data) => {
      const frame = JSON.parse(text(data)) as { type: string };
      if (frame.type === 'welcome') resolve(ws);
      else if (frame.type === 'message') delivered.count++;
    });
    ws.once('error', reject);
  });
}

/** One cycle: connect, welcome, one message to `peer`, its ack, close (resolved once the socket closed). */
function cycle(port: number, n: number, peer: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${HOST}:${port}/ws?token=${token(`soak-${n}`)}`, { perMessageDeflate: false, localAddress: sourceAddress(n) });
    let acked = false;
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`cycle ${n} timed out`));
    }, 15_000);
    ws.on('message', (data) => {
      const frame = JSON.parse(text(data)) as { type: string; id?: string };
      if (frame.type === 'welcome') ws.send(`{"type":"message","to":"${peer}","id":"m${n}","payload":{"n":${n}}}`);
      else if (frame.type === 'ack' && frame.id === `m${n}`) {
        acked = true;
        ws.close(1000);
      } else if (frame.type === 'error') {
        ws.terminate();
        reject(new Error(`cycle ${n}: ${text(data)}`));
      }
    });
    ws.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    ws.once('close', () => {
      clearTimeout(timer);
      if (acked) resolve();
      else reject(new Error(`cycle ${n}: closed before its ack`));
    });
  });
}

async function metricsOf(port: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://${HOST}:${port}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const name of ['nodejs_heap_size_used_bytes', 'nodejs_heap_size_total_bytes', 'nodejs_external_memory_bytes']) {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, "m").exec(text);
    out[name] = m?.[1] === undefined ? NaN : Number(m[1]);
  }
  return out;
}

function redisCli(url: string, args: string[]): string {
  const { hostname, port } = new URL(url);
  return execFileSync('redis-cli', ['-h', hostname, '-p', port, ...args], { encoding: 'utf8' });
}

const redisUsedMemory = (url: string) => Number(/used_memory:(\d+)/.exec(redisCli(url, ['info', 'memory']))?.[1] ?? NaN);

async function sample(cycle: number, started: number, nodes: Server[], redisUrl: string | undefined): Promise<Sample> {
  const metrics = await Promise.all(nodes.map((n) => metricsOf(n.port)));
  return {
    cycle,
    seconds: (performance.now() - started) / 1000,
    rss: nodes.map((n) => rssBytes(n.child.pid)),
    heapUsed: metrics.map((m) => m.nodejs_heap_size_used_bytes ?? NaN),
    heapTotal: metrics.map((m) => m.nodejs_heap_size_total_bytes ?? NaN),
    external: metrics.map((m) => m.nodejs_external_memory_bytes ?? NaN),
    ...(redisUrl === undefined ? {} : { redisUsed: redisUsedMemory(redisUrl) }),
  };
}

/** A full (mark-compact) GC as --trace-gc prints it: the live heap it left is the floor a leak would raise. */
interface MarkCompact {
  cycle: number;
  beforeMb: number;
  afterMb: number;
}

const MARK_COMPACT = /Mark-Compact[^\d]*([\d.]+) \(([\d.]+)\) -> ([\d.]+) \(([\d.]+)\) MB/;

function watchGc(server: Server, cycle: () => number): MarkCompact[] {
  const seen: MarkCompact[] = [];
  let partial = '';
  server.child.proc.stdout?.on('data', (chunk: string | Buffer) => {
    const lines = (partial + String(chunk)).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      const m = MARK_COMPACT.exec(line);
      if (m !== null) seen.push({ cycle: cycle(), beforeMb: Number(m[1]), afterMb: Number(m[3]) });
    }
  });
  return seen;
}

const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
const growth = (from: number, to: number) => `${(((to - from) / from) * 100).toFixed(1)} %`;

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const redisUrl = o.redis ? await ensureRedis() : undefined;
  const prefix = `soak${process.pid}:`;
  const env = { REDIS_PREFIX: prefix, ...o.env };
  const nodeArgs = o.traceGc ? ['--trace-gc', ...o.nodeArgs] : o.nodeArgs;
  const a = await startSwitchboard('soak-a', redisUrl, nodeArgs, env);
  const nodes = o.redis ? [a, await startSwitchboard('soak-b', redisUrl, nodeArgs, env)] : [a];
  let done = 0;
  const gcs = o.traceGc ? nodes.map((n) => watchGc(n, () => done)) : [];
  const peerNode = nodes[nodes.length - 1] ?? a;
  const delivered = { count: 0 };
  const peers = await Promise.all(Array.from({ length: o.concurrency }, (_, i) => openPeer(peerNode.port, `peer-${i}`, delivered)));
  console.log(`soak: ${o.cycles} cycles, ${o.concurrency} at once, ${nodes.length} node(s)${o.redis ? ' on Redis' : ''}; sample every ${o.sampleEvery}, warm-up ${o.warmup}`);

  const samples: Sample[] = [];
  const started = performance.now();
  let next = 0;
  let sampling = Promise.resolve();
  const lane = async (i: number) => {
    while (next < o.cycles) {
      const n = next++;
      await cycle(a.port, n, `peer-${i}`);
      done++;
      if (done % o.sampleEvery === 0 || done === o.warmup) {
        const at = done;
        sampling = sampling.then(async () => {
          const s = await sample(at, started, nodes, redisUrl);
          samples.push(s);
          const rate = Math.round(at / s.seconds);
          console.log(`  ${String(at).padStart(8)} cycles  ${rate}/s  RSS ${s.rss.map(mib).join(' / ')}  heap used ${s.heapUsed.map(mib).join(' / ')}${s.redisUsed === undefined ? '' : `  redis ${mib(s.redisUsed)}`}`);
        });
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, (_, i) => lane(i)));
  const elapsed = (performance.now() - started) / 1000;
  await sampling;
  await sleep(2000);
  const settled = await sample(done, started, nodes, redisUrl);

  for (const p of peers) p.close(1000);
  let keysLeft: number | undefined;
  let keySample: string[] = [];
  if (redisUrl !== undefined) {
    await sleep(2000);
    const keys = redisCli(redisUrl, ['--scan', '--pattern', `${prefix}*`]).split('\n').filter((k) => k !== '');
    keysLeft = keys.length;
    keySample = keys.slice(0, 10);
  }

  const warm = samples.filter((s) => s.cycle >= o.warmup)[0] ?? samples[0];
  const last = samples[samples.length - 1];
  if (warm === undefined || last === undefined) throw new Error('no samples: raise --cycles or lower --sample-every');
  const tail = samples.filter((s) => s.cycle > o.cycles * 0.8);
  const floor = (pick: (s: Sample) => number[], k: number) => Math.min(...tail.map((s) => pick(s)[k] ?? NaN));
  console.log(`\nsoak: ${done} cycles in ${elapsed.toFixed(1)} s (${Math.round(done / elapsed)} cycles/s); ${delivered.count} messages delivered to peers`);
  nodes.forEach((n, k) => {
    const w = (pick: (s: Sample) => number[]) => pick(warm)[k] ?? NaN;
    const e = (pick: (s: Sample) => number[]) => pick(settled)[k] ?? NaN;
    console.log(`${n.name}: after warm-up (cycle ${warm.cycle}) → end (+2 s idle)`);
    console.log(`  RSS        ${mib(w((s) => s.rss))} → ${mib(e((s) => s.rss))}  (${growth(w((s) => s.rss), e((s) => s.rss))})`);
    console.log(`  heap used  ${mib(w((s) => s.heapUsed))} → ${mib(e((s) => s.heapUsed))}  (${growth(w((s) => s.heapUsed), e((s) => s.heapUsed))}); lowest in the last 20 %: ${mib(floor((s) => s.heapUsed, k))}`);
    const full = (gcs[k] ?? []).filter((g) => g.cycle >= o.warmup);
    const [first, lastGc] = [full[0], full[full.length - 1]];
    if (o.traceGc && first === undefined)
      console.log('  no full GC after warm-up yet: heap used and RSS still carry the closed sessions\' garbage; run more cycles');
    if (first !== undefined && lastGc !== undefined) {
      console.log(
        `  live heap after a full GC (--trace-gc): ${first.afterMb} MB at cycle ${first.cycle} → ${lastGc.afterMb} MB at cycle ${lastGc.cycle} (${growth(first.afterMb, lastGc.afterMb)}; ${full.length} full GCs after warm-up)`,
      );
      // Steady state: from the first full GC after warm-up on. V8 defers that one until the old
      // generation reaches its first limit; until then RSS carries every dead session's garbage.
      const steady = samples.filter((s) => s.cycle >= first.cycle);
      const fifth = Math.max(1, Math.floor(steady.length / 5));
      // RSS between full GCs is a sawtooth whose height V8 chooses; its floor is what a leak would raise.
      const floorOf = (part: Sample[]) => Math.min(...part.map((s) => s.rss[k] ?? NaN));
      if (steady.length >= 2) {
        const [early, late] = [floorOf(steady.slice(0, fifth)), floorOf(steady.slice(-fifth))];
        console.log(`  steady state (from cycle ${first.cycle}): lowest RSS of its first fifth ${mib(early)} → of its last fifth ${mib(late)} (${growth(early, late)})`);
      }
    }
    console.log(`  heap total ${mib(w((s) => s.heapTotal))} → ${mib(e((s) => s.heapTotal))};  external ${mib(w((s) => s.external))} → ${mib(e((s) => s.external))}`);
  });
  if (redisUrl !== undefined && warm.redisUsed !== undefined && settled.redisUsed !== undefined) {
    console.log(`redis used_memory ${mib(warm.redisUsed)} → ${mib(settled.redisUsed)} (${growth(warm.redisUsed, settled.redisUsed)})`);
    console.log(`redis keys under ${prefix} 2 s after every session closed: ${keysLeft}${keySample.length > 0 ? ` (${keySample.join(', ')})` : ''}`);
  }
  mkdirSync(OUT, { recursive: true });
  writeFileSync(path.join(OUT, 'soak.json'), JSON.stringify({ options: o, elapsed, done, delivered: delivered.count, samples, settled, gcs, keysLeft, keySample }, null, 1));

  await Promise.all(nodes.map((n) => n.child.stop()));
  await stopRedis();
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
