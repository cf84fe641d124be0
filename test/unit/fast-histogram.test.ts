// The delivery histogram is our own (metrics/fast-histogram.ts, for speed);
// it must expose exactly what a prom-client histogram would for the same
// observations.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Histogram, Registry } from 'prom-client';
import { FastHistogram } from '../../src/metrics/fast-histogram';

const BOUNDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5];

/** Every sample as "name{labels sorted} value", sorted: comparable whatever the label order. */
async function samples(registry: Registry): Promise<string[]> {
  const out: string[] = [];
  for (const metric of await registry.getMetricsAsJSON()) {
    for (const v of metric.values as { labels: Record<string, string | number>; value: number; metricName?: string }[]) {
      const labels = Object.entries(v.labels)
        .map(([k, value]) => `${k}=${String(value)}`)
        .sort()
        .join(',');
      out.push(`${v.metricName ?? metric.name}{${labels}} ${v.value}`);
    }
  }
  return out.sort();
}

test('FastHistogram exposes what a prom-client histogram does for the same observations', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(fc.constantFrom('local', 'remote'), fc.double({ min: 0, max: 2, noNaN: true })), { maxLength: 50 }), async (observations) => {
      const theirs = new Registry();
      const ours = new Registry();
      for (const registry of [theirs, ours]) registry.setDefaultLabels({ node: 'n1' });
      const reference = new Histogram({ name: 'h_seconds', help: 'h', labelNames: ['scope'], buckets: BOUNDS, registers: [theirs] });
      reference.zero({ scope: 'local' });
      reference.zero({ scope: 'remote' });
      const fast = new FastHistogram('h_seconds', 'h', 'scope', ['local', 'remote'], BOUNDS, ours);
      for (const [scope, value] of observations) {
        reference.labels(scope).observe(value);
        fast.child(scope).observe(value);
      }
      assert.deepEqual(await samples(ours), await samples(theirs));
      const text = await ours.metrics();
      assert.match(text, /# TYPE h_seconds histogram/);
      assert.match(text, /h_seconds_bucket\{scope="local",le="\+Inf",node="n1"\} \d+/);
    }),
    { numRuns: 50 },
  );
});
