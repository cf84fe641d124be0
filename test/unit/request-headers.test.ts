// The header map handlers get (transport/uws-http.ts copyHeaders), fed header
// lines directly: uWS itself never passes a name with "_" in it, so this is
// where a `__proto__` line can be shown to stay a plain entry.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { copyHeaders } from '../../src/transport/uws-http';

/** A request whose header lines are `lines`, in order (what uWS's forEach walks). */
const request = (lines: [string, string][]) => ({
  forEach: (visit: (name: string, value: string) => void) => lines.forEach(([name, value]) => visit(name, value)),
});

const lines: [string, string][] = [
  ['__proto__', 'a'],
  ['constructor', 'b'],
  ['x-forwarded-for', '198.51.100.7'],
  ['__proto__', 'c'],
  ['tostring', 'd'],
  ['x-forwarded-for', '198.51.100.1'],
];

test('names that are Object.prototype members are plain entries; repeated lines are joined in order', () => {
  const headers = copyHeaders(request(lines), undefined);
  assert.equal(Object.getPrototypeOf(headers), null);
  assert.deepEqual(Object.entries(headers), [
    ['__proto__', 'a, c'],
    ['constructor', 'b'],
    ['x-forwarded-for', '198.51.100.7, 198.51.100.1'],
    ['tostring', 'd'],
  ]);
  // An absent name is absent, not inherited.
  assert.equal(copyHeaders(request([]), undefined).constructor, undefined);
});

test('only the named headers are copied, every line of each', () => {
  const headers = copyHeaders(request(lines), ['x-forwarded-for', '__proto__', 'valueof']);
  assert.deepEqual(Object.entries(headers), [
    ['__proto__', 'a, c'],
    ['x-forwarded-for', '198.51.100.7, 198.51.100.1'],
  ]);
  assert.equal(headers.valueof, undefined);
});
