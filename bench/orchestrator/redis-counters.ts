// Redis's own counters over a measured window, for the capacity model
// (bench/capacity.ts): commands processed, bytes in and out, calls per command
// and used memory, summed over every Redis server running (the shared
// redis-server, or the cluster's three masters: systems.ts redisEndpoints(),
// the same set as redisPids()), read with INFO at loadgen's "measure" line and
// at its result line, like the servers' CPU (loadgen.ts runLoadgen).
//
//   measure line ──► mark() ── INFO stats commandstats memory ──► each Redis
//   result line  ──► mark() ── INFO …                           ──► each Redis
//   loadgen exit ──► close(): the two snapshots' difference, per second,
//                    then per relayed message (perMessageFigures)
//
// total_commands_processed counts the commands a script runs as well as the
// script call (Redis 7: one EVALSHA with ten PUBLISHes counts 11), so
// "commands per message" is Redis's work, not round trips; the calls of
// EVALSHA/EVAL (round trips of the single-server bus) and of PUBLISH/SPUBLISH
// (one per destination batch) are kept apart. The two INFO calls are taken
// out again: the first one's command and reply and the second one's request
// fall inside the window.
import Redis from 'ioredis';
import type { Measurement } from './model';

const SECTIONS = ['stats', 'commandstats', 'memory'];
/** The INFO request as RESP puts it on the wire (counted in total_net_input_bytes). */
const REQUEST_BYTES = ['INFO', ...SECTIONS].reduce((sum, arg) => sum + `$${arg.length}\r\n${arg}\r\n`.length, `*${SECTIONS.length + 1}\r\n`.length);

interface Snapshot {
  at: number;
  commands: number;
  netIn: number;
  netOut: number;
  usedMemory: number;
  expiredKeys: number;
  /** Calls per command name (commandstats), e.g. evalsha, publish, spublish. */
  calls: Map<string, number>;
  /** Bytes of the INFO reply itself, written after the snapshot was taken. */
  replyBytes: number;
}

/** What Redis did between two marks, summed over every server. */
export interface RedisWindow {
  seconds: number;
  commands: number;
  netIn: number;
  netOut: number;
  usedMemoryDelta: number;
  expiredKeys: number;
  calls: Map<string, number>;
}

function parseInfo(text: string, at: number): Snapshot {
  const fields = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  const num = (key: string) => Number(fields.get(key) ?? NaN);
  const calls = new Map<string, number>();
  for (const [key, value] of fields)
    if (key.startsWith('cmdstat_')) calls.set(key.slice('cmdstat_'.length), Number(/calls=(\d+)/.exec(value)?.[1] ?? NaN));
  const body = Buffer.byteLength(text);
  return {
    at,
    commands: num('total_commands_processed'),
    netIn: num('total_net_input_bytes'),
    netOut: num('total_net_output_bytes'),
    usedMemory: num('used_memory'),
    expiredKeys: num('expired_keys'),
    calls,
    replyBytes: `$${body}\r\n`.length + body + 2,
  };
}

function sum(snapshots: Snapshot[], at: number): Snapshot {
  const total: Snapshot = { at, commands: 0, netIn: 0, netOut: 0, usedMemory: 0, expiredKeys: 0, calls: new Map(), replyBytes: 0 };
  for (const s of snapshots) {
    total.commands += s.commands;
    total.netIn += s.netIn;
    total.netOut += s.netOut;
    total.usedMemory += s.usedMemory;
    total.expiredKeys += s.expiredKeys;
    total.replyBytes += s.replyBytes;
    for (const [name, n] of s.calls) total.calls.set(name, (total.calls.get(name) ?? 0) + n);
  }
  return total;
}

export class RedisCounters {
  private readonly clients: Redis[];
  private readonly marks: Promise<Snapshot | undefined>[] = [];

  /** Connects to each `host:port` at once, so the first mark does not wait for a connection. */
  constructor(endpoints: string[]) {
    this.clients = endpoints.map((endpoint) => {
      const [host, port] = endpoint.split(':');
      return new Redis({ host, port: Number(port), maxRetriesPerRequest: 1, enableReadyCheck: false, retryStrategy: () => null, lazyConnect: false });
    });
    for (const client of this.clients) client.on('error', () => undefined); // a failed read leaves the figures out (close())
  }

  /** Reads every server's counters now; the reads settle in the background. */
  mark(): void {
    const at = performance.now();
    const reads = this.clients.map(async (client) => parseInfo(String(await client.call('INFO', ...SECTIONS)), at));
    this.marks.push(Promise.all(reads).then((snapshots) => sum(snapshots, at), () => undefined));
  }

  /** Disconnects; the difference between the first and the last mark, or undefined (fewer than two, or a read failed). */
  async close(): Promise<RedisWindow | undefined> {
    const marks = await this.disconnect();
    const first = marks[0];
    const last = marks[marks.length - 1];
    return marks.length < 2 || first === undefined || last === undefined ? undefined : this.between(first, last);
  }

  /** Disconnects; the difference between each mark and the next (undefined where a read failed). */
  async closeWindows(): Promise<(RedisWindow | undefined)[]> {
    const marks = await this.disconnect();
    return marks.slice(1).map((last, i) => {
      const first = marks[i];
      return first === undefined || last === undefined ? undefined : this.between(first, last);
    });
  }

  private async disconnect(): Promise<(Snapshot | undefined)[]> {
    const marks = await Promise.all(this.marks);
    for (const client of this.clients) client.disconnect();
    return marks;
  }

  private between(first: Snapshot, last: Snapshot): RedisWindow {
    const servers = this.clients.length;
    const calls = new Map<string, number>();
    for (const [name, n] of last.calls) calls.set(name, n - (first.calls.get(name) ?? 0));
    calls.set('info', (calls.get('info') ?? 0) - servers);
    return {
      seconds: (last.at - first.at) / 1000,
      commands: last.commands - first.commands - servers,
      netIn: last.netIn - first.netIn - servers * REQUEST_BYTES,
      netOut: last.netOut - first.netOut - first.replyBytes,
      usedMemoryDelta: last.usedMemory - first.usedMemory,
      expiredKeys: last.expiredKeys - first.expiredKeys,
      calls,
    };
  }
}

/**
 * The measurement's per-message figures (two-node relay runs): each node's CPU µs per relayed
 * message (server_cpu_i cores ÷ messages/s), Redis's CPU µs, commands and bytes per message, and
 * the raw window figures per second. msgs_per_s counts messages received in loadgen's window.
 */
export function perMessageFigures(m: Measurement, w: RedisWindow | undefined): Measurement {
  const rate = m.msgs_per_s;
  const out: Measurement = {};
  if (typeof rate !== 'number' || !(rate > 0)) return out;
  const perMsg = (perSecond: unknown) => (typeof perSecond === 'number' && Number.isFinite(perSecond) ? perSecond / rate : undefined);
  const put = (key: string, value: number | undefined) => {
    if (value !== undefined && Number.isFinite(value)) out[key] = value;
  };
  put('cpu_us_per_msg_recv_node', (perMsg(m.server_cpu_0) ?? NaN) * 1e6);
  put('cpu_us_per_msg_send_node', (perMsg(m.server_cpu_1) ?? NaN) * 1e6);
  put('redis_cpu_us_per_msg', (perMsg(m.redis_cpu) ?? NaN) * 1e6);
  if (w === undefined || !(w.seconds > 0)) return out;
  const calls = (...names: string[]) => names.reduce((s, name) => s + (w.calls.get(name) ?? 0), 0);
  put('redis_cmds_per_s', w.commands / w.seconds);
  put('redis_cmds_per_msg', perMsg(w.commands / w.seconds));
  put('redis_in_bytes_per_msg', perMsg(w.netIn / w.seconds));
  put('redis_out_bytes_per_msg', perMsg(w.netOut / w.seconds));
  put('redis_scripts_per_msg', perMsg(calls('evalsha', 'eval') / w.seconds));
  put('redis_publishes_per_msg', perMsg(calls('publish', 'spublish') / w.seconds));
  out.redis_calls_per_s = [...w.calls]
    .filter(([, n]) => n > 0)
    .sort((x, y) => y[1] - x[1])
    .map(([name, n]) => `${name} ${Math.round(n / w.seconds)}`)
    .join(', ');
  return out;
}
