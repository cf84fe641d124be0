// `npm run fuzz`: every property of the suite's fuzz tests (properties.ts), with
// many more cases. Prints each property's cases and time; on a counterexample,
// prints it with the seed and path to replay it, and exits 1.
//
//   FUZZ_RUNS     cases per property (default: 1,000,000 in all, shared evenly)
//   FUZZ_ONLY     run only properties whose name contains this text
//   FUZZ_SEED, FUZZ_PATH   replay one counterexample (as printed on failure)
import fc from 'fast-check';
import { properties } from './properties';

const TOTAL = 1_000_000;
const only = process.env.FUZZ_ONLY;
const chosen = properties.filter((p) => only === undefined || p.name.includes(only));
const runs = process.env.FUZZ_RUNS === undefined ? Math.ceil(TOTAL / chosen.length) : Number(process.env.FUZZ_RUNS);
const seed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
const path = process.env.FUZZ_PATH;
if (chosen.length === 0 || !Number.isSafeInteger(runs) || runs < 1 || (seed !== undefined && !Number.isInteger(seed))) {
  console.error('fuzz: nothing to run (check FUZZ_ONLY, FUZZ_RUNS, FUZZ_SEED)');
  process.exit(2);
}

let cases = 0;
const began = performance.now();
for (const property of chosen) {
  const start = performance.now();
  const details = property.check({ numRuns: runs, ...(seed === undefined ? {} : { seed }), ...(path === undefined ? {} : { path }) });
  const ms = performance.now() - start;
  cases += details.numRuns;
  console.log(`${details.failed ? 'FAIL' : 'ok  '} ${String(details.numRuns).padStart(9)} cases ${(ms / 1000).toFixed(1).padStart(6)} s  ${property.name}`);
  if (details.failed) {
    console.error((fc.defaultReportMessage(details) ?? '').slice(0, 4000));
    console.error(String(details.errorInstance).slice(0, 2000));
    console.error(`replay: FUZZ_ONLY=${JSON.stringify(property.name)} FUZZ_SEED=${details.seed} FUZZ_PATH=${JSON.stringify(details.counterexamplePath ?? '')} npm run fuzz`);
    process.exit(1);
  }
}
console.log(`fuzz: ${cases} cases, ${chosen.length} properties, ${((performance.now() - began) / 1000).toFixed(1)} s, no counterexample`);
