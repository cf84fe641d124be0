import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig, redactedConfig } from '../../src/config/load';

const SECRET = 'a-secret-of-at-least-thirty-two-bytes!!';

describe('loadConfig', () => {
  test('defaults, a resolved node id, frozen', () => {
    const config = loadConfig({ JWT_SECRET: SECRET });
    assert.equal(config.PORT, 8080);
    assert.equal(config.MAX_PAYLOAD_BYTES, 65536);
    assert.equal(config.JWT_REQUIRE_EXP, true);
    assert.deepEqual(config.TRUSTED_PROXIES, []);
    assert.match(config.nodeId, /^[A-Za-z0-9_.:@-]+-[0-9a-f]{6}$/);
    assert.ok(Object.isFrozen(config));
  });

  test('values are parsed and lists split', () => {
    const config = loadConfig({ JWT_SECRET: SECRET, PORT: ' 9000 ', JWT_REQUIRE_EXP: 'false', TRUSTED_PROXIES: '10.0.0.0/8, 192.168.1.1', NODE_ID: 'n-1' });
    assert.equal(config.PORT, 9000);
    assert.equal(config.JWT_REQUIRE_EXP, false);
    assert.deepEqual(config.TRUSTED_PROXIES, ['10.0.0.0/8', '192.168.1.1']);
    assert.equal(config.nodeId, 'n-1');
  });

  const bad: [string, Record<string, string>, string][] = [
    ['non-numeric', { PORT: 'abc' }, 'PORT'],
    ['negative', { MAX_PAYLOAD_BYTES: '-1' }, 'MAX_PAYLOAD_BYTES'],
    ['out of range', { PORT: '70000' }, 'PORT'],
    ['bad enum', { LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    ['bad boolean', { JWT_REQUIRE_EXP: 'maybe' }, 'JWT_REQUIRE_EXP'],
    ['bad redis url', { REDIS_URL: 'http://x' }, 'REDIS_URL'],
    ['bad node id', { NODE_ID: 'has space' }, 'NODE_ID'],
    ['short secret', { JWT_SECRET: 'short' }, 'JWT_SECRET'],
    ['JWKS over plain http', { JWT_SECRET: '', JWT_JWKS_URL: 'http://keys.example.com/.well-known/jwks.json' }, 'JWT_JWKS_URL'],
    ['JWKS over http to a private address', { JWT_SECRET: '', JWT_JWKS_URL: 'http://10.0.0.5/jwks.json' }, 'JWT_JWKS_URL'],
    ['JWKS over http to a name that starts like loopback', { JWT_SECRET: '', JWT_JWKS_URL: 'http://127.0.0.1.example.com/jwks.json' }, 'JWT_JWKS_URL'],
    ['JWKS over ftp', { JWT_SECRET: '', JWT_JWKS_URL: 'ftp://keys.example.com/jwks.json' }, 'JWT_JWKS_URL'],
    ['JWKS not a URL', { JWT_SECRET: '', JWT_JWKS_URL: 'keys.example.com/jwks.json' }, 'JWT_JWKS_URL'],
    ['zero rate-limit points (it would refuse every frame)', { RATE_LIMIT_POINTS: '0' }, 'RATE_LIMIT_POINTS'],
  ];
  for (const [name, env, variable] of bad) {
    test(`${name}: one line naming ${variable}`, () => {
      assert.throws(
        () => loadConfig({ JWT_SECRET: SECRET, ...env }),
        (error: unknown) => error instanceof ConfigError && error.problems.length === 1 && (error.problems[0] ?? '').startsWith(`${variable}:`),
      );
    });
  }

  test('several bad variables: one line each', () => {
    assert.throws(
      () => loadConfig({ JWT_SECRET: SECRET, PORT: 'x', LOG_LEVEL: 'y', IDLE_TIMEOUT_S: 'z' }),
      (error: unknown) => error instanceof ConfigError && error.problems.length === 3,
    );
  });

  test('a JWT key is required outside dev mode; dev mode generates one', () => {
    assert.throws(() => loadConfig({}), (e: unknown) => e instanceof ConfigError && /^JWT_SECRET: a JWT key is required/.test(e.problems[0] ?? ''));
    const dev = loadConfig({}, { dev: true });
    assert.ok((dev.JWT_SECRET ?? '').length >= 32);
    assert.equal(dev.DEMO, true);
  });

  test('JWT_JWKS_URL: https:// anywhere, plain http:// only to loopback', () => {
    for (const url of ['https://keys.example.com/.well-known/jwks.json', 'http://127.0.0.1:8080/jwks', 'http://127.9.9.9/jwks', 'http://localhost/jwks', 'http://[::1]:9000/jwks'])
      assert.equal(loadConfig({ JWT_JWKS_URL: url }).JWT_JWKS_URL, url);
  });

  test('a refused RATE_LIMIT_POINTS=0 says why', () => {
    assert.throws(
      () => loadConfig({ JWT_SECRET: SECRET, RATE_LIMIT_POINTS: '0' }),
      (error: unknown) => error instanceof ConfigError && /^RATE_LIMIT_POINTS: must be at least 1 \(0 would refuse every frame/.test(error.problems[0] ?? ''),
    );
  });

  test('two key sources are refused', () => {
    assert.throws(() => loadConfig({ JWT_SECRET: SECRET, JWT_JWKS_URL: 'https://example.test/jwks' }), ConfigError);
  });

  test('redacted output hides secrets', () => {
    const shown = JSON.stringify(redactedConfig(loadConfig({ JWT_SECRET: SECRET, REDIS_URL: 'redis://:pw@localhost:6379' })));
    assert.ok(!shown.includes(SECRET));
    assert.ok(!shown.includes('pw@'));
    assert.ok(shown.includes('(redacted)'));
  });
});
