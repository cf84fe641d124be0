// Running bench/out/loadgen (bench/loadgen.c): the arguments that make it speak
// each system's protocol, and one run to completion with the servers' CPU
// sampled over its measured window.
import { LOADGEN } from './paths';
import { Child, cpuSeconds, parseJson } from './processes';
import { RedisCounters, perMessageFigures } from './redis-counters';
import { redisEndpoints, redisPids, type Server, type SystemName } from './systems';
import type { TokenFiles } from './tokens';

export type Measurement = Record<string, number | string>;

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

/** loadgen arguments that make it speak each system's protocol. */
export function protocolArgs(system: SystemName, kind: 'relay' | 'fanout' | 'idle' | 'connect', t: TokenFiles): string[] {
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
