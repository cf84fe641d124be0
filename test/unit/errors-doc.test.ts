// docs/errors.md is checked against src/errors/codes.ts both ways (fastify's
// and undici's habit): every code the server sends is documented, with the
// status it really has, and every documented code is one the server sends.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLOSE, CLOSE_ADVICE, ERROR_CODES, HTTP_ERRORS, SIDECAR_REPLY_ERRORS } from '../../src/errors/codes';
import { tableRows, unquote } from '../helpers/markdown';

const doc = readFileSync(join(__dirname, '..', '..', '..', 'docs', 'errors.md'), 'utf8');
const rows = (heading: string) => tableRows(doc, `\n${heading}\n`);

/** Every row says what to do: the last column is never empty. */
function assertAdvice(table: string[][], heading: string): void {
  for (const row of table) assert.ok((row.at(-1) ?? '').length > 0, `${heading}: no "what to do" for ${row.join(' | ')}`);
}

test('the error frame codes in docs/errors.md are exactly ERROR_CODES', () => {
  const table = rows('## `error` frames');
  assert.deepEqual(table.map((row) => unquote(row[0] ?? '')).sort(), Object.keys(ERROR_CODES).sort());
  assertAdvice(table, 'error frames');
});

test('the HTTP error codes in docs/errors.md are exactly HTTP_ERRORS, each with its status', () => {
  const table = rows('## HTTP errors');
  const documented = table.map((row) => [unquote(row[1] ?? ''), Number(row[0])] as const);
  assert.deepEqual(new Map(documented).size, documented.length, 'a code is documented twice');
  assert.deepEqual(Object.fromEntries(documented.sort(([a], [b]) => a.localeCompare(b))), Object.fromEntries(Object.entries(HTTP_ERRORS).sort(([a], [b]) => a.localeCompare(b))));
  assertAdvice(table, 'HTTP errors');
});

test('the close codes in docs/errors.md are exactly CLOSE: every (code, reason) pair, and each code with advice in CLOSE_ADVICE', () => {
  const table = rows('## Close codes');
  const pair = (code: number, reason: string) => `${code} ${reason}`;
  const documented = table.map((row) => pair(Number(row[0]), unquote(row[1] ?? '')));
  assert.deepEqual(new Set(documented).size, documented.length, 'a close is documented twice');
  const sent = new Set(Object.values(CLOSE).map(({ code, reason }) => pair(code, reason)));
  assert.deepEqual(documented.sort(), [...sent].sort());
  const codes = new Set(table.map((row) => Number(row[0])));
  for (const code of Object.keys(CLOSE_ADVICE).map(Number)) assert.ok(codes.has(code), `close ${code} has advice in codes.ts but no row`);
  assertAdvice(table, 'close codes');
});

test('the tunnel channel error reasons in docs/errors.md are exactly SIDECAR_REPLY_ERRORS', () => {
  const table = rows('## Tunnel channel errors');
  assert.deepEqual(table.map((row) => unquote(row[0] ?? '')).sort(), Object.keys(SIDECAR_REPLY_ERRORS).sort());
  assertAdvice(table, 'tunnel channel errors');
});
