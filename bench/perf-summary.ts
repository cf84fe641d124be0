// Summarises a `perf record -g` of a node process started with --perf-basic-prof
// (JIT frames named "JS:*fn file:line"). The V8 .cpuprofile only sees JavaScript
// frames and charges native time (V8's JSON, string table, GC, the kernel's
// send path) to whatever JavaScript frame it last saw; perf sees all of it.
// Used by `npm run bench -- --profile` when `perf` works on the machine.
import { execFileSync } from 'node:child_process';

interface Row {
  pct: number;
  name: string;
}

function report(file: string, args: string[]): Row[] {
  const text = execFileSync('perf', ['report', '-i', file, '--stdio', ...args], { maxBuffer: 64 * 2 ** 20, stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  const rows: Row[] = [];
  for (const line of text.split('\n')) {
    // Flat rows look like "    48.84%  node" or "     6.09%  [k] finish_task_switch" (children mode: two percentages).
    const match = /^\s+([\d.]+)%\s+(?:[\d.]+%\s+)?(.+?)\s*$/.exec(line);
    if (match?.[1] === undefined || match[2] === undefined) continue;
    rows.push({ pct: Number(match[1]), name: match[2] });
  }
  return rows;
}

/** Coarse buckets for where the cycles go; the first matching rule wins. */
const AREAS: [string, RegExp][] = [
  ['kernel: TCP send/receive, wake-ups, epoll (syscalls)', /^\[k\] /],
  ['V8 JSON.parse', /JsonParser|JsonParse/],
  ['V8 JSON.stringify', /JsonStringifier|JsonStringify/],
  ['V8 garbage collection', /Heap|Scavenger|MarkCompact|Sweeper|GCTracer|Evacuat|MemoryAllocator|ConcurrentMarking|Marking/],
  ['V8 strings (internalising, hashing, concatenation)', /StringTable|InternalizeString|String::|StringAdd|ComputeAndSetRawHash|FlatString|StringBuilder|ConsString/],
  ['V8 promises and microtasks', /Microtask|Promise|AsyncFunction|Await/],
  ['V8 property access and calls (ICs, builtins)', /^\[\.\] Builtins_|LookupIterator|Runtime_|IC::/],
  ['JIT-compiled JavaScript', /^\[\.\] JS:/],
  ['libc (malloc, memcpy, send)', /^\[\.\] (_?_?int_)?(malloc|free|memcpy|memmove|__memcpy|__memmove|__send|__libc|cfree|_int_free|__vdso)/],
];

export interface PerfSummary {
  byDso: Row[];
  areas: Row[];
  topSelf: Row[];
  topJsInclusive: Row[];
}

export function summarizePerf(file: string, top = 30): PerfSummary {
  const byDso = report(file, ['--no-children', '--sort', 'dso', '-g', 'none']).slice(0, 10);
  const symbols = report(file, ['--no-children', '--sort', 'sym', '-g', 'none']);
  const areaPct = new Map<string, number>();
  for (const row of symbols) {
    const area = AREAS.find(([, re]) => re.test(row.name))?.[0] ?? 'other native (node, uWS, V8 runtime)';
    areaPct.set(area, (areaPct.get(area) ?? 0) + row.pct);
  }
  const areas = [...areaPct.entries()].map(([name, pct]) => ({ name, pct })).sort((a, b) => b.pct - a.pct);
  const inclusive = report(file, ['--children', '--sort', 'sym', '-g', 'none']).filter((r) => r.name.startsWith('[.] JS:'));
  return { byDso, areas, topSelf: symbols.slice(0, top), topJsInclusive: inclusive.slice(0, 25) };
}

export function perfMarkdown(s: PerfSummary, title: string): string {
  const table = (head: string, rows: Row[]) => [`| % | ${head} |`, '|---:|---|', ...rows.map((r) => `| ${r.pct.toFixed(1)} | \`${r.name.replace(/\|/g, '\\|')}\` |`)];
  return [
    `### ${title}`,
    '',
    ...table('area (self time, all samples of the process)', s.areas),
    '',
    ...table('binary', s.byDso),
    '',
    ...table('symbol (self)', s.topSelf),
    '',
    ...table('JavaScript function (inclusive of callees)', s.topJsInclusive),
    '',
    'Inclusive times follow frame pointers: native code built without them (uWS, libc) ends the walk, ' +
      'so the kernel time under uWS `send` is not credited to its JavaScript callers (see the kernel area above).',
    '',
  ].join('\n');
}
