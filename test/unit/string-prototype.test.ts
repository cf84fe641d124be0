// Guards against a process-wide slowdown found with bench W1/W2: ioredis 6.0
// defines `class VerbatimString extends String`, and making String.prototype
// the prototype of another object turns it into a dictionary-mode object for
// the whole process. V8 then looks every string method up (charCodeAt, indexOf,
// slice, …) through a generic inline cache instead of inlining it: decoding a
// client frame took 960 ns instead of 660 (45 % more), and every other string
// routine slowed down with it. ioredis 6.1 makes it fast again (hence ^6.1.0 in
// package.json); this test fails when any module the server loads undoes that.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

/** Runs `setup` in a fresh node and reports whether String.prototype still has fast properties. */
function stringPrototypeStaysFast(setup: string): boolean {
  const script = `${setup}; process.stdout.write(String(%HasFastProperties(String.prototype)));`;
  const run = spawnSync(process.execPath, ['--allow-natives-syntax', '-e', script], { encoding: 'utf8', cwd: join(__dirname, '..', '..', '..') });
  assert.equal(run.status, 0, run.stderr);
  return run.stdout === 'true';
}

test('loading the server (and the Redis client it uses) keeps String.prototype in fast mode', () => {
  const main = join(__dirname, '..', '..', 'src', 'main.js');
  assert.equal(stringPrototypeStaysFast(`require(${JSON.stringify(main)}); require('ioredis')`), true);
});

test('the check sees the slowdown: a class extending String turns it off', () => {
  assert.equal(stringPrototypeStaysFast('class Verbatim extends String {}'), false);
});
