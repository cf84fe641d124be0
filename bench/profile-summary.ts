// Summarises a V8 .cpuprofile (node --cpu-prof): the functions with the most
// self time, and self time grouped by where the code lives (a Switchboard
// module, a dependency, Node internals, native/GC/idle). Used by
// `npm run bench -- --profile`; also runs standalone:
//
//   node dist/bench/profile-summary.js bench/out/profile/<file>.cpuprofile [top]
import { readFileSync } from 'node:fs';
import path from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileRow {
  name: string;
  where: string;
  selfMs: number;
  selfPct: number;
}

export interface ProfileSummary {
  totalMs: number;
  /** Share of the profile spent outside JavaScript waiting for events. */
  idlePct: number;
  top: ProfileRow[];
  byArea: { area: string; selfMs: number; selfPct: number }[];
  /** Inclusive time of a few functions the next optimisation step asks about (JSON.parse, the rate limiter, metrics, uWS send...). */
  inclusive: { name: string; ms: number; pct: number }[];
}

/** Where a frame's code lives: a repository file, a package, a Node internal, or V8's own pseudo-frames. */
function areaOf(frame: CallFrame, root: string): string {
  const url = frame.url;
  if (url === '') {
    if (frame.functionName === '(idle)') return '(idle)';
    if (frame.functionName === '(garbage collector)') return '(garbage collector)';
    if (frame.functionName === '(program)') return '(program: native, uWS, syscalls)';
    return '(native)';
  }
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0] ?? ''}`;
  const file = url.startsWith('file://') ? url.slice(7) : url;
  const nm = file.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const rest = file.slice(nm + 14).split('/');
    return rest[0]?.startsWith('@') === true ? `${rest[0]}/${rest[1] ?? ''}` : (rest[0] ?? file);
  }
  const rel = path.relative(root, file);
  return rel.startsWith('..') ? file : rel.replace(/^dist\//, '');
}

function label(frame: CallFrame, root: string): { name: string; where: string } {
  const name = frame.functionName === '' ? '(anonymous)' : frame.functionName;
  if (frame.url === '') return { name, where: '' };
  return { name, where: `${areaOf(frame, root)}:${frame.lineNumber + 1}` };
}

/** Functions whose inclusive time is reported when present (matched by name, any file). */
const WATCHED = [
  'onMessage',
  'decodeClientFrame',
  'parse',
  'consume',
  'countReceived',
  'countSent',
  'sendDirect',
  'deliver',
  'send',
  'observe',
  'inc',
  'publish',
  'flush',
  'encode',
  'signal',
  'stringify',
  'processTicksAndRejections',
  'runMicrotasks',
];

export function summarizeProfile(file: string, root: string, topN = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const node of profile.nodes) byId.set(node.id, node);
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

  // Self time per node: each sample's time delta goes to the node that was on top.
  const selfUs = new Map<number, number>();
  let totalUs = 0;
  profile.samples.forEach((id, i) => {
    const dt = Math.max(0, profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0);
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
    totalUs += dt;
  });

  const rows = new Map<string, ProfileRow>();
  const areas = new Map<string, number>();
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (node === undefined) continue;
    const { name, where } = label(node.callFrame, root);
    const key = `${name}@${where}`;
    const row = rows.get(key) ?? { name, where, selfMs: 0, selfPct: 0 };
    row.selfMs += us / 1000;
    rows.set(key, row);
    const area = areaOf(node.callFrame, root);
    areas.set(area, (areas.get(area) ?? 0) + us);
    if (area === '(idle)') idleUs += us;
  }

  // Inclusive time of watched names: a sample counts once per name however deep the recursion.
  const inclusiveUs = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const dt = Math.max(0, profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)?.callFrame;
      if (frame === undefined) break;
      if (!WATCHED.includes(frame.functionName)) continue;
      const key = `${frame.functionName} (${areaOf(frame, root)})`;
      if (seen.has(key)) continue;
      seen.add(key);
      inclusiveUs.set(key, (inclusiveUs.get(key) ?? 0) + dt);
    }
  });

  const pct = (us: number) => (totalUs === 0 ? 0 : (100 * us) / totalUs);
  const top = [...rows.values()]
    .sort((a, b) => b.selfMs - a.selfMs)
    .slice(0, topN)
    .map((row) => ({ ...row, selfPct: pct(row.selfMs * 1000) }));
  const byArea = [...areas.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([area, us]) => ({ area, selfMs: us / 1000, selfPct: pct(us) }));
  const inclusive = [...inclusiveUs.entries()]
    .sort((a, b) => b[1] - a[1])
    .filter(([, us]) => pct(us) >= 0.5)
    .map(([name, us]) => ({ name, ms: us / 1000, pct: pct(us) }));
  return { totalMs: totalUs / 1000, idlePct: pct(idleUs), top, byArea, inclusive };
}

export function profileMarkdown(summary: ProfileSummary, title: string): string {
  const f = (n: number) => n.toFixed(1);
  const lines = [
    `### ${title}`,
    '',
    `${f(summary.totalMs)} ms sampled, ${f(summary.idlePct)} % idle.`,
    '',
    '| self % | self ms | function | where |',
    '|---:|---:|---|---|',
    ...summary.top.map((r) => `| ${f(r.selfPct)} | ${f(r.selfMs)} | \`${r.name}\` | ${r.where} |`),
    '',
    '| self % | area |',
    '|---:|---|',
    ...summary.byArea.slice(0, 20).map((a) => `| ${f(a.selfPct)} | ${a.area} |`),
    '',
    '| inclusive % | function (area) |',
    '|---:|---|',
    ...summary.inclusive.slice(0, 30).map((a) => `| ${f(a.pct)} | ${a.name} |`),
    '',
  ];
  return lines.join('\n');
}

if (require.main === module) {
  const [file, top] = process.argv.slice(2);
  if (file === undefined) {
    process.stderr.write('usage: node dist/bench/profile-summary.js <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  const root = path.resolve(__dirname, '..', '..');
  process.stdout.write(profileMarkdown(summarizeProfile(file, root, top === undefined ? 25 : Number(top)), path.basename(file)));
}
