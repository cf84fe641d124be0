// Running bench/out/loadgen (bench/loadgen.c): the arguments that make it speak
// each system's protocol, and one run to completion with the servers' CPU
// sampled over its measured window.
import { LOADGEN } from './paths';
import { Child, cpuSeconds, parseJson } from './processes';
import { RedisCounters, perMessageFigures } from './redis-counters';
import { redisEndpoints, redisPids, type Server, type SystemName } from './systems';
import type { TokenFiles } from './tokens';
import type { Measurement } from './model';

export type { Measurement };

/** Runs loadgen to completion; samples the servers' CPU between its "measure" line and its result line. */
export async function runLoadgen(args: string[], servers: Server[], timeoutS: number, onMeasure?: () => void): Promise<Measurement> {
  const child = new Child('loadgen', LOADGEN, args, { PATH: process.env.PATH });
  let cpu0: number[] = [];
  let redisCpu0 = NaN;
  let redisCpu = NaN;
  const redisPidList = servers.length > 1 ? redisPids() : [];
  const redisCounters = servers.length > 1 ? new RedisCounters(redisEndpoints()) : undefined;
  const redisCpuNow = () => redisPidList.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  let t0 = 0;
  let result: Record<string, unknown> | undefined;
  let serverCpu: number[] = [];
  child.onLine((line) => {
    const rec = parseJson(line);
    if (rec === undefined) return;
    if (rec.phase === 'measure') {
      t0 = performance.now();
      cpu0 = servers.map((s) => cpuSeconds(s.child.pid));
      if (redisPidList.length > 0) redisCpu0 = redisCpuNow();
      redisCounters?.mark();
      onMeasure?.();
    } else {
      const wall = (performance.now() - t0) / 1000;
      serverCpu = servers.map((s, i) => (cpuSeconds(s.child.pid) - (cpu0[i] ?? NaN)) / wall);
      if (redisPidList.length > 0) redisCpu = (redisCpuNow() - redisCpu0) / wall;
      redisCounters?.mark();
      result = rec;
    }
  });
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), timeoutS * 1000);
  const code = await child.exited;
  clearTimeout(timer);
  const redisWindow = await redisCounters?.close();
  if (result === undefined) throw new Error(`loadgen exited (${code}) without a result; stderr: ${child.stderr}`);
  if (typeof result.error === 'string') throw new Error(`loadgen: ${result.error}`);
  const m: Measurement = {};
  for (const [k, v] of Object.entries(result)) if (typeof v === 'number' || typeof v === 'string') m[k] = v;
  serverCpu.forEach((cpu, i) => (m[`server_cpu_${i}`] = cpu));
  if (Number.isFinite(redisCpu)) m.redis_cpu = redisCpu;
  if (servers.length > 1) Object.assign(m, perMessageFigures(m, redisWindow));
  return m;
}

export interface IdleConnections {
  /** loadgen's ready line: `ready` sockets, `setup_s` to open them all. */
  ready: Record<string, unknown>;
  close(): Promise<void>;
}

/**
 * Opens `count` idle authenticated connections (loadgen `idle`, users i<indexBase>… on), spread over
 * `sources` client addresses, and holds them until close() (or loadgen's own hold limit).
 */
export async function holdIdleConnections(
  server: Server,
  system: SystemName,
  tokens: TokenFiles,
  count: number,
  options: { sources: number; indexBase?: number },
): Promise<IdleConnections> {
  const args = [
    ...['--mode', 'idle', '--port', String(server.port), '--count', String(count), '--sources', String(options.sources)],
    ...['--index-base', String(options.indexBase ?? 0), '--hold-s', '300', '--setup-timeout', '90'],
    ...protocolArgs(system, 'idle', tokens),
  ];
  const child = new Child('loadgen-idle', LOADGEN, args, { PATH: process.env.PATH }, 'pipe');
  const close = async () => {
    child.proc.stdin?.end(); // loadgen exits when its stdin closes; its sockets close with it
    const timer = setTimeout(() => child.proc.kill('SIGKILL'), 10_000);
    await child.exited;
    clearTimeout(timer);
  };
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
    return { ready, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** loadgen arguments that make it speak each system's protocol. */
export function protocolArgs(system: SystemName, kind: 'relay' | 'fanout' | 'idle' | 'connect' | 'setup', t: TokenFiles): string[] {
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
      case 'setup': // frames are forwarded unchanged; `ack=1` answers each with an ack once handed on
        return ['--recv-path', '/ws?id=e{i}&to=c{i}&ack=1', '--send-path', '/ws?id=c{i}&to=e{i}&ack=1', '--marker', ''];
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
      return ['--recv-path', tokenPath, '--recv-tokens', t.idle];
    case 'connect':
      return ['--recv-path', tokenPath, '--recv-tokens', t.connect];
    case 'setup': {
      // Caller c<i> and callee e<i>: SPEC §3.2's signaling types, each with an id so that it is acknowledged.
      const frame = (type: string, to: string, id: string) => `{"type":"${type}","to":"${to}{i}","id":"${id}","payload":"{p}"}`;
      return [
        ...['--recv-path', tokenPath, '--recv-tokens', t.callees, '--send-path', tokenPath, '--send-tokens', t.callers],
        ...['--offer-fmt', frame('offer', 'e', 'o'), '--cand-fmt', frame('candidate', 'e', 'c')],
        ...['--answer-fmt', frame('answer', 'c', 'a'), '--cand-back-fmt', frame('candidate', 'c', 'c')],
        ...['--marker', '"payload":"', '--ack-marker', '"type":"ack"'],
      ];
    }
  }
}
