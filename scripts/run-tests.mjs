#!/usr/bin/env node
// Runs the compiled test suite with Node's built-in test runner.
//
//   node scripts/run-tests.mjs [filter...]
//
// Collects every `*.test.js` file under dist/test (recursively, sorted) and runs
//   node --test --test-reporter=spec --test-concurrency=2 <files...>
// with stdio inherited and SWITCHBOARD_TEST=1 in the environment, exiting with the
// runner's exit code. The spec reporter's summary ("ℹ tests N", "ℹ pass N",
// "ℹ fail N") is what CI reads.
//
// Arguments that do not start with "-" are file-path substrings: only files whose
// path (relative to the repository root) contains at least one of them are run,
// e.g. `npm test -- auth` or `npm test -- unit/envelope contract/`.
// Arguments starting with "-" are passed through to `node --test`
// (e.g. `npm test -- --test-name-pattern=roundtrip`).
//
// Finding no test files (after filtering) is a failure: exit code 1.
//
// Environment:
//   TEST_DIR  directory to search instead of dist/test (absolute, or relative to
//             the repository root). Meant for checking this script itself.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const testDir = path.resolve(root, process.env.TEST_DIR || 'dist/test');

/** @param {string} dir @returns {string[]} */
function findTests(dir) {
  /** @type {string[]} */
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...findTests(full));
    else if (entry.isFile() && entry.name.endsWith('.test.js')) found.push(full);
  }
  return found;
}

const args = process.argv.slice(2);
const filters = args.filter((a) => !a.startsWith('-'));
const passThrough = args.filter((a) => a.startsWith('-'));

/** @param {string} p */
const toPosix = (p) => p.split(path.sep).join('/');
/** Path for messages: relative to the repository root when inside it. @param {string} p */
const shown = (p) => {
  const rel = path.relative(root, p);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? toPosix(rel) : p;
};

/** @param {string} dir */
function isDirectory(dir) {
  try {
    return statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

if (!isDirectory(testDir)) {
  console.error(`run-tests: test directory ${shown(testDir)} does not exist (did the build run? try \`npm run build\`)`);
  process.exit(1);
}

let files = findTests(testDir)
  .map((f) => toPosix(path.relative(root, f)))
  .sort();
if (filters.length > 0) files = files.filter((f) => filters.some((s) => f.includes(s)));

if (files.length === 0) {
  const what = filters.length > 0 ? ` matching ${filters.map((s) => JSON.stringify(s)).join(', ')}` : '';
  console.error(`run-tests: no *.test.js files found under ${shown(testDir)}${what}; a run with no tests is a failure`);
  process.exit(1);
}

const child = spawn(
  process.execPath,
  ['--test', '--test-reporter=spec', '--test-concurrency=2', ...passThrough, ...files],
  { cwd: root, stdio: 'inherit', env: { ...process.env, SWITCHBOARD_TEST: '1' } },
);

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => child.kill(sig));
}

child.on('error', (err) => {
  console.error(`run-tests: failed to start node --test: ${err.message}`);
  process.exit(1);
});

child.on('exit', (code, signal) => {
  if (signal) {
    console.error(`run-tests: test runner killed by ${signal}`);
    process.exit(1);
  }
  process.exit(code ?? 1);
});
