// The full chaos run of issue 15: `npm run chaos [-- --only <scenario>[,<scenario>]] [--clients N] [--rate R]`.
// 300 clients (150 pairs) by default, longer phases than the `npm test` form,
// the same scenarios (scenarios.ts); prints the figures as one table at the
// end and exits non-zero when any scenario lost, duplicated, reordered or
// silently dropped a message. Every scenario runs as a node:test test, so its
// processes are killed by PID in teardown and a hang is cut off by the test's
// timeout; the whole run stays under ten minutes.
import { after, test } from 'node:test';
import { parseArgs } from 'node:util';
import { CHAOS_NODE_ENV } from './cluster';
import { table } from './report';
import { FULL, RUNNERS, SCENARIOS, type ScenarioName, type ScenarioResult, type Size } from './scenarios';
import { EXPECTATIONS, violations } from './verdict';

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    clients: { type: 'string' },
    rate: { type: 'string' },
    baseline: { type: 'boolean', default: false },
  },
});

const chosen: ScenarioName[] =
  values.only === undefined ? SCENARIOS.filter((s) => s !== 'baseline' || values.baseline) : values.only.split(',').map((s) => s.trim() as ScenarioName);
for (const name of chosen) if (!SCENARIOS.includes(name)) throw new Error(`--only: unknown scenario "${name}" (one of ${SCENARIOS.join(', ')})`);

const size: Size = {
  ...FULL,
  clients: values.clients === undefined ? FULL.clients : Number(values.clients),
  ratePerClient: values.rate === undefined ? FULL.ratePerClient : Number(values.rate),
};
if (!Number.isInteger(size.clients) || size.clients < 2 || size.clients % 2 !== 0) throw new Error('--clients: an even number, at least 2');
if (!(size.ratePerClient > 0)) throw new Error('--rate: messages per second per client, above 0');

/** Per scenario; all of them together stay under ten minutes. */
const TIMEOUT_MS = Math.floor(570_000 / chosen.length);
const results: ScenarioResult[] = [];

for (const name of chosen) {
  test(`chaos ${name} (${size.clients} clients, ${size.ratePerClient} msg/s each)`, { timeout: TIMEOUT_MS }, async (t) => {
    const result = await RUNNERS[name](t, size);
    results.push(result);
    const ttl = Number(CHAOS_NODE_ENV.PRESENCE_TTL_MS);
    const broken = violations(result, name === 'kill' ? { ...EXPECTATIONS.kill, offlineWithinMs: ttl + 5000 } : EXPECTATIONS[name]);
    if (broken.length > 0) throw new Error(`${name}: ${broken.join('; ')}`);
  });
}

after(() => {
  if (results.length > 0) console.log(`\n${table(results)}\n`);
});
