// The fuzz properties (properties.ts), a few hundred cases each: a few seconds
// in `npm test`. `npm run fuzz` runs the same ones a million times in all.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { properties } from './properties';

const RUNS = 300;

for (const property of properties)
  test(property.name, () => {
    const details = property.check({ numRuns: RUNS });
    assert.ok(!details.failed, `${(fc.defaultReportMessage(details) ?? "").slice(0, 3000)}\n${String(details.errorInstance).slice(0, 3000)}`);
  });
