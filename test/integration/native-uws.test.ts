// Switchboard refuses to run on uWebSockets.js's JavaScript fallback (issue 2):
// it is many times slower and not what was tested.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TEST_SECRET } from '../helpers/node';
import { runCli } from '../helpers/process';

test('serve exits with a clear message when uWebSockets.js fell back to its JavaScript emulation', async (t) => {
  const result = await runCli(t, { UWS_USE_FALLBACK: 'true', JWT_SECRET: TEST_SECRET }, ['serve']);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /uWebSockets\.js did not load its native binary .* refuses to run/);
  assert.doesNotMatch(result.stdout, /switchboard listening/);
});
