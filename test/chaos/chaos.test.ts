// Issue 15, "zero loss", in its `npm test` form: 60 clients in pairs through
// HAProxy (the shipped config) in front of 3 real nodes on real Redis, short
// phases. A baseline with no fault shows the harness itself counts right;
// then a rolling restart, a kill -9, a Redis restart and a Sentinel failover,
// each while the traffic flows. Every acknowledged message must be delivered
// exactly once and in per-pair order, and none may go unanswered on a
// connection that stayed up; where clients lost their connection (1, 2)
// every reconnect must resume its session and no message may be refused
// peer_offline meanwhile. The figures are printed as test diagnostics.
// The full form (300 clients, longer phases) is `npm run chaos` (run.ts).
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { CHAOS_NODE_ENV } from './cluster';
import { table } from './report';
import { RUNNERS, SHORT, type ScenarioName, type ScenarioResult } from './scenarios';
import { EXPECTATIONS, violations, type Expectations } from './verdict';

/** A bound on each scenario so a hang fails the test instead of the suite; not a timing assertion. */
const SCENARIO_TIMEOUT_MS = 90_000;

async function scenario(t: TestContext, name: ScenarioName): Promise<ScenarioResult> {
  const result = await RUNNERS[name](t, SHORT);
  const printed = table([result]);
  for (const line of printed.split('\n')) t.diagnostic(line);
  return result;
}

/** The promises (verdict.ts), with the whole table in the failure message. */
function assertHeld(result: ScenarioResult, expect: Expectations): void {
  assert.deepEqual(violations(result, expect), [], `\n${table([result])}`);
}

test('chaos baseline (no fault): every message acked, delivered once, in order', { timeout: SCENARIO_TIMEOUT_MS }, async (t) => {
  const result = await scenario(t, 'baseline');
  assertHeld(result, EXPECTATIONS.baseline);
  const f = result.figures;
  assert.equal(f.acked, f.sent, table([result]));
  assert.equal(f.delivered, f.sent, table([result]));
  assert.equal(f.cut, 0);
  assert.equal(result.clients.reconnects, 0);
});

test('chaos 1: rolling restart of all 3 nodes under traffic loses nothing acknowledged', { timeout: SCENARIO_TIMEOUT_MS }, async (t) => {
  const result = await scenario(t, 'rolling');
  for (const r of result.recoveries) assert.equal(r.exit, 'code 0', `${r.event} exits 0 after its drain`);
  assertHeld(result, EXPECTATIONS.rolling);
});

test('chaos 2: kill -9 of a node: watchers see its users offline, its clients resume and lose nothing acknowledged', { timeout: SCENARIO_TIMEOUT_MS }, async (t) => {
  const result = await scenario(t, 'kill');
  // A functional bound (the offline is seen at all, around PRESENCE_TTL_MS), not a latency target.
  assertHeld(result, { ...EXPECTATIONS.kill, offlineWithinMs: Number(CHAOS_NODE_ENV.PRESENCE_TTL_MS) + 5000 });
});

test('chaos 3: Redis restart mid-traffic: every message delivered or answered, none silently dropped', { timeout: SCENARIO_TIMEOUT_MS }, async (t) => {
  assertHeld(await scenario(t, 'redis'), EXPECTATIONS.redis);
});

test('chaos 4: Sentinel failover mid-traffic: every message delivered or answered, none silently dropped', { timeout: SCENARIO_TIMEOUT_MS }, async (t) => {
  assertHeld(await scenario(t, 'sentinel'), EXPECTATIONS.sentinel);
});
