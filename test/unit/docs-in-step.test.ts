// README's tables are checked against the code that defines them (fastify's
// habit): error codes, close codes, audit events, metrics and configuration
// variables with their defaults cannot drift apart from the documentation.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { NODE_FLAGS } from '../../src/cli/node-flags';
import { envSchema } from '../../src/config/schema';
import { CLOSE, CLOSE_ADVICE, ERROR_CODES } from '../../src/errors/codes';
import { AUDIT_EVENTS } from '../../src/log/audit';
import { Metrics } from '../../src/metrics/metrics';
import { tableRows as readmeTable, unquote } from '../helpers/markdown';

const readme = readFileSync(join(__dirname, '..', '..', '..', 'README.md'), 'utf8');

const tableRows = (heading: string) => readmeTable(readme, heading);

test('every error code is documented, and only those', () => {
  const documented = tableRows('### Error codes').map((row) => unquote(row[0] ?? ''));
  assert.deepEqual(documented.sort(), Object.keys(ERROR_CODES).sort());
});

test('every close code and reason is documented', () => {
  const rows = tableRows('### Close codes');
  const documented = new Map(rows.map((row) => [Number(row[0]), unquote(row[1] ?? '')]));
  for (const { code, reason } of Object.values(CLOSE)) {
    if (code < 1008) continue; // 1000/1001 are plain WebSocket closes
    assert.ok(documented.get(code)?.split(', ').includes(reason), `close ${code} ${reason} missing from README`);
  }
  assert.deepEqual([...documented.keys()].sort(), Object.keys(CLOSE_ADVICE).map(Number).sort());
});

test('every audit event is documented', () => {
  const documented = tableRows('**Logs.**').map((row) => unquote(row[0] ?? ''));
  assert.deepEqual(documented.sort(), [...AUDIT_EVENTS].sort());
});

const exportedMetrics = async () =>
  (await new Metrics({ node: 'doc-test' }).registry.getMetricsAsJSON()).map((m) => m.name).filter((n) => /^(signaling|relay)_/.test(n));
const documentedMetrics = () => tableRows('**Metrics.**').map((row) => unquote(row[0] ?? ''));

test('every custom metric is documented and exported', async () => {
  assert.deepEqual(documentedMetrics().sort(), (await exportedMetrics()).sort());
});

test('every configuration variable is documented with its real default', () => {
  const defaults: Record<string, string | number | boolean | string[] | undefined> = envSchema.parse({});
  const rows = new Map(tableRows('## Configuration').map((row) => [unquote(row[0] ?? ''), unquote(row[1] ?? '')]));
  for (const [name, value] of Object.entries(defaults)) {
    const shown = value === undefined || (Array.isArray(value) && value.length === 0) ? '(unset)' : String(value);
    assert.equal(rows.get(name), shown, `README default of ${name}`);
  }
  assert.deepEqual([...rows.keys()].sort(), Object.keys(envSchema.shape).sort());
});

test('npm start and the README run node with the flags Switchboard is tuned for', () => {
  const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  for (const flag of NODE_FLAGS) {
    assert.ok(pkg.scripts.start?.includes(`node ${flag}`), `package.json start lacks ${flag}`);
    assert.ok(readme.includes(flag), `README does not mention ${flag}`);
  }
});
