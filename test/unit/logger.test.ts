// The logger's second line of defence: tokens, Authorization headers, query
// strings and IPs are censored wherever the redaction paths reach, in audit
// records (flat, censored at the top level by a cheaper child) as in others.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { audit } from '../../src/log/audit';
import { createLogger } from '../../src/log/logger';

function capture(): { lines: Record<string, unknown>[]; destination: Writable } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  return { lines, destination };
}

test('secrets are censored at the top level and one level down; audit records at the top level, from any logger', () => {
  const { lines, destination } = capture();
  const logger = createLogger('info', destination);
  logger.info({ token: 't', query: 'q', ip: '192.0.2.1', headers: { authorization: 'Bearer t' }, request: { token: 't', ip: '192.0.2.1' } }, 'plain');
  audit(logger, 'auth_failed', { reason: 'expired', token: 't', authorization: 'Bearer t', query: 'a=1', ip: '192.0.2.1' });
  audit(logger.child({ user: 'alice' }), 'takeover', { code: 4009 });
  audit(logger, 'auth_failed', { reason: 'again' }); // the cached audit child serves the second record too

  assert.deepEqual(lines[0], {
    ...lines[0],
    token: '[redacted]',
    query: '[redacted]',
    ip: '[redacted]',
    headers: { authorization: '[redacted]' },
    request: { token: '[redacted]', ip: '[redacted]' },
  });
  const { level, time, ...record } = lines[1]!;
  assert.equal(level, 'info');
  assert.equal(typeof time, 'string');
  assert.deepEqual(record, {
    reason: 'expired',
    token: '[redacted]',
    authorization: '[redacted]',
    query: '[redacted]',
    ip: '[redacted]',
    audit: true,
    event: 'auth_failed',
    msg: 'auth_failed',
  });
  assert.deepEqual([lines[2]!.user, lines[2]!.event, lines[2]!.code], ['alice', 'takeover', 4009]);
  assert.equal(lines[3]!.reason, 'again');
  assert.ok(!JSON.stringify(lines).includes('192.0.2.1') && !JSON.stringify(lines).includes('Bearer'));
});
