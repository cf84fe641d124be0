import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, sign as cryptoSign, type KeyObject, type JsonWebKey } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import jwt from 'jsonwebtoken';
import { bearerToken } from '../../src/auth/bearer';
import { roomAllowed, tunnelAllowed, type Claims, type VerifyResult } from '../../src/auth/claims';
import { claimsFromPayload, createVerifier, JwtVerifier } from '../../src/auth/jwt-verifier';
import { keySourceFromConfig } from '../../src/auth/keys';
import { signerFromConfig, type TokenSigner } from '../../src/auth/token-signer';
import { loadConfig, type Config } from '../../src/config/load';
import { createLogger } from '../../src/log/logger';

const SECRET = 'unit-test-secret-of-at-least-thirty-two-bytes';
const OTHER_SECRET = 'another-secret-that-is-also-thirty-two-bytes!';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaOther = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaPss = generateKeyPairSync('rsa-pss', { modulusLength: 2048, hashAlgorithm: 'sha256', mgf1HashAlgorithm: 'sha256' });
const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' });
const ed25519 = generateKeyPairSync('ed25519');
const ed448 = generateKeyPairSync('ed448');

const now = () => Math.floor(Date.now() / 1000);
const pem = (key: KeyObject) => key.export({ type: key.type === 'private' ? 'pkcs8' : 'spki', format: 'pem' }).toString();
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const claims = (extra: Record<string, unknown> = {}) => ({ sub: 'alice', exp: now() + 3600, ...extra });

function hsConfig(extra: Record<string, string> = {}): Config {
  return loadConfig({ JWT_SECRET: SECRET, ...extra });
}
function publicKeyConfig(key: KeyObject, extra: Record<string, string> = {}): Config {
  return loadConfig({ JWT_PUBLIC_KEY: pem(key), ...extra });
}
function hs(payload: object, algorithm: jwt.Algorithm = 'HS256', secret = SECRET): string {
  return jwt.sign(payload, secret, { algorithm, noTimestamp: true });
}
// Built by hand: jsonwebtoken 9 cannot sign EdDSA, and the test should not trust the code under test.
function edDsa(payload: object, key: KeyObject, header: object = { alg: 'EdDSA', typ: 'JWT' }): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${cryptoSign(null, Buffer.from(input), key).toString('base64url')}`;
}
function unsigned(payload: object): string {
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`;
}
function hmacWith(secret: string, payload: object): string {
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}
function expectOk(result: VerifyResult): Claims {
  if (!result.ok) assert.fail(`expected ok, got ${result.reason}: ${result.detail}`);
  return result.claims;
}

test('bearerToken reads Authorization: Bearer <token> and nothing else', () => {
  const cases: [string | undefined, string | undefined][] = [
    ['Bearer abc.def.ghi', 'abc.def.ghi'],
    ['bearer abc', 'abc'],
    ['Bearer   abc', 'abc'],
    ['Basic abc', undefined],
    ['Bearer ', undefined],
    ['Bearer a b', undefined],
    // Two Authorization lines arrive joined: neither token is guessed.
    ['Bearer a, Bearer b', undefined],
    ['', undefined],
    [undefined, undefined],
  ];
  for (const [header, token] of cases) assert.equal(bearerToken(header), token, String(header));
});

describe('keys', () => {
  test('an HS secret becomes a KeyObject pinned to HS256/384/512', () => {
    const source = keySourceFromConfig(hsConfig());
    assert.equal(source.kind, 'static');
    if (source.kind !== 'static' || source.key.kind !== 'jws') return assert.fail('expected a static jws key');
    assert.equal(source.key.key.type, 'secret');
    assert.deepEqual(source.key.algorithms, ['HS256', 'HS384', 'HS512']);
  });

  test('public keys are pinned by key type and curve', () => {
    const cases: [string, KeyObject, string[] | 'eddsa'][] = [
      ['rsa', rsa.publicKey, ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']],
      ['rsa-pss', rsaPss.publicKey, ['PS256', 'PS384', 'PS512']],
      ['P-256', p256.publicKey, ['ES256']],
      ['P-384', p384.publicKey, ['ES384']],
      ['P-521', p521.publicKey, ['ES512']],
      ['ed25519', ed25519.publicKey, 'eddsa'],
      ['ed448', ed448.publicKey, 'eddsa'],
    ];
    for (const [name, key, expected] of cases) {
      const source = keySourceFromConfig(publicKeyConfig(key));
      if (source.kind !== 'static') return assert.fail(name);
      if (expected === 'eddsa') assert.equal(source.key.kind, 'eddsa', name);
      else assert.deepEqual(source.key.kind === 'jws' ? source.key.algorithms : undefined, expected, name);
    }
  });

  test('a PEM with literal \\n escapes and a PEM file are both read', async () => {
    const escaped = pem(p256.publicKey).replace(/\n/g, '\\n');
    const fromEnv = new JwtVerifier({ config: loadConfig({ JWT_PUBLIC_KEY: escaped }) });
    const token = jwt.sign(claims(), p256.privateKey, { algorithm: 'ES256' });
    expectOk(await fromEnv.verify(token));
    const file = join(mkdtempSync(join(tmpdir(), 'sb-auth-')), 'public.pem');
    writeFileSync(file, pem(p256.publicKey));
    expectOk(await new JwtVerifier({ config: loadConfig({ JWT_PUBLIC_KEY_FILE: file }) }).verify(token));
  });

  test('unusable key material fails at construction with an error naming the variable', () => {
    const cases: [string, Record<string, string>, RegExp][] = [
      ['garbage PEM', { JWT_PUBLIC_KEY: '-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----' }, /^Error: JWT_PUBLIC_KEY: cannot parse a PEM public key/],
      ['not a PEM at all', { JWT_PUBLIC_KEY: 'hello' }, /JWT_PUBLIC_KEY: cannot parse a PEM public key/],
      ['private key as public key', { JWT_PUBLIC_KEY: pem(rsa.privateKey) }, /JWT_PUBLIC_KEY: holds a private key/],
      ['missing file', { JWT_PUBLIC_KEY_FILE: '/nonexistent/key.pem' }, /JWT_PUBLIC_KEY_FILE: cannot read \/nonexistent\/key.pem \(ENOENT\)/],
      ['secp256k1 has no JWT algorithm here', { JWT_PUBLIC_KEY: pem(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey) }, /curve secp256k1/],
    ];
    for (const [name, env, message] of cases) assert.throws(() => createVerifier(loadConfig(env)), message, name);
  });
});

describe('JwtVerifier: signatures and algorithms', () => {
  test('valid tokens for every supported algorithm family', async () => {
    const cases: [string, Config, string][] = [
      ['HS256', hsConfig(), hs(claims(), 'HS256')],
      ['HS384', hsConfig(), hs(claims(), 'HS384')],
      ['HS512', hsConfig(), hs(claims(), 'HS512')],
      ['RS256', publicKeyConfig(rsa.publicKey), jwt.sign(claims(), rsa.privateKey, { algorithm: 'RS256' })],
      ['RS512', publicKeyConfig(rsa.publicKey), jwt.sign(claims(), rsa.privateKey, { algorithm: 'RS512' })],
      ['PS256 (rsa key)', publicKeyConfig(rsa.publicKey), jwt.sign(claims(), rsa.privateKey, { algorithm: 'PS256' })],
      ['PS256 (rsa-pss key)', publicKeyConfig(rsaPss.publicKey), jwt.sign(claims(), rsaPss.privateKey, { algorithm: 'PS256' })],
      ['ES256', publicKeyConfig(p256.publicKey), jwt.sign(claims(), p256.privateKey, { algorithm: 'ES256' })],
      ['ES384', publicKeyConfig(p384.publicKey), jwt.sign(claims(), p384.privateKey, { algorithm: 'ES384' })],
      ['ES512', publicKeyConfig(p521.publicKey), jwt.sign(claims(), p521.privateKey, { algorithm: 'ES512' })],
      ['EdDSA Ed25519', publicKeyConfig(ed25519.publicKey), edDsa(claims(), ed25519.privateKey)],
      ['EdDSA Ed448', publicKeyConfig(ed448.publicKey), edDsa(claims(), ed448.privateKey)],
    ];
    for (const [name, config, token] of cases) {
      const result = await createVerifier(config).verify(token);
      assert.equal(expectOk(result).user, 'alice', name);
    }
  });

  test('bad tokens are rejected with the right reason', async () => {
    const rsaConfig = publicKeyConfig(rsa.publicKey);
    const edConfig = publicKeyConfig(ed25519.publicKey);
    const p256Config = publicKeyConfig(p256.publicKey);
    const cases: { name: string; config: Config; token: string; reason: 'token_invalid' | 'token_expired'; detail?: RegExp }[] = [
      { name: 'alg none (HS key)', config: hsConfig(), token: unsigned(claims()), reason: 'token_invalid', detail: /signature is required/ },
      { name: 'alg none (RSA key)', config: rsaConfig, token: unsigned(claims()), reason: 'token_invalid' },
      { name: 'alg none (Ed key)', config: edConfig, token: unsigned(claims()), reason: 'token_invalid', detail: /invalid algorithm/ },
      { name: 'alg none with a signature', config: hsConfig(), token: `${unsigned(claims())}c2ln`, reason: 'token_invalid', detail: /invalid algorithm/ },
      { name: 'HS256 signed with the RSA public PEM (confusion)', config: rsaConfig, token: hmacWith(pem(rsa.publicKey), claims()), reason: 'token_invalid', detail: /invalid algorithm/ },
      { name: 'HS256 signed with the Ed public PEM (confusion)', config: edConfig, token: hmacWith(pem(ed25519.publicKey), claims()), reason: 'token_invalid', detail: /invalid algorithm/ },
      { name: 'RS256 token against an HS secret', config: hsConfig(), token: jwt.sign(claims(), rsa.privateKey, { algorithm: 'RS256' }), reason: 'token_invalid', detail: /invalid algorithm/ },
      { name: 'ES384 token against a P-256 key', config: p256Config, token: jwt.sign(claims(), p384.privateKey, { algorithm: 'ES384' }), reason: 'token_invalid', detail: /invalid algorithm/ },
      { name: 'wrong HS secret', config: hsConfig(), token: hs(claims(), 'HS256', OTHER_SECRET), reason: 'token_invalid', detail: /invalid signature/ },
      { name: 'wrong RSA key', config: rsaConfig, token: jwt.sign(claims(), rsaOther.privateKey, { algorithm: 'RS256' }), reason: 'token_invalid', detail: /invalid signature/ },
      { name: 'wrong Ed key', config: edConfig, token: edDsa(claims(), generateKeyPairSync('ed25519').privateKey), reason: 'token_invalid', detail: /invalid signature/ },
      { name: 'tampered payload', config: hsConfig(), token: tamper(hs(claims())), reason: 'token_invalid', detail: /invalid signature/ },
      { name: 'tampered Ed payload', config: edConfig, token: tamper(edDsa(claims(), ed25519.privateKey)), reason: 'token_invalid', detail: /invalid signature/ },
      { name: 'Ed key, RS256 header', config: edConfig, token: edDsa(claims(), ed25519.privateKey, { alg: 'RS256' }), reason: 'token_invalid', detail: /invalid algorithm/ },
      { name: 'empty', config: hsConfig(), token: '', reason: 'token_invalid' },
      { name: 'one part', config: hsConfig(), token: 'abc', reason: 'token_invalid', detail: /malformed/ },
      { name: 'garbage parts', config: hsConfig(), token: 'a.b.c', reason: 'token_invalid' },
      { name: 'garbage parts (Ed)', config: edConfig, token: 'a.b.c', reason: 'token_invalid', detail: /malformed/ },
      { name: 'too long', config: hsConfig(), token: hs(claims({ pad: 'x'.repeat(9000) })), reason: 'token_invalid', detail: /longer than/ },
      { name: 'expired', config: hsConfig(), token: hs(claims({ exp: now() - 60 })), reason: 'token_expired' },
      { name: 'expired (RSA)', config: rsaConfig, token: jwt.sign(claims({ exp: now() - 60 }), rsa.privateKey, { algorithm: 'RS256' }), reason: 'token_expired' },
      { name: 'expired (Ed)', config: edConfig, token: edDsa(claims({ exp: now() - 60 }), ed25519.privateKey), reason: 'token_expired' },
      { name: 'nbf in the future', config: hsConfig(), token: hs(claims({ nbf: now() + 120 })), reason: 'token_invalid', detail: /not active/ },
      { name: 'nbf in the future (Ed)', config: edConfig, token: edDsa(claims({ nbf: now() + 120 }), ed25519.privateKey), reason: 'token_invalid', detail: /not active/ },
      { name: 'expired and signed wrongly', config: hsConfig(), token: hs(claims({ exp: now() - 60 }), 'HS256', OTHER_SECRET), reason: 'token_invalid' },
      { name: 'no exp', config: hsConfig(), token: hs({ sub: 'alice' }), reason: 'token_invalid', detail: /no exp/ },
      { name: 'no exp (Ed)', config: edConfig, token: edDsa({ sub: 'alice' }, ed25519.privateKey), reason: 'token_invalid', detail: /no exp/ },
      { name: 'exp not a number', config: hsConfig(), token: hmacWith(SECRET, { sub: 'alice', exp: 'soon' }), reason: 'token_invalid' },
      { name: 'payload not an object', config: edConfig, token: edDsa([1, 2], ed25519.privateKey), reason: 'token_invalid', detail: /not a JSON object/ },
    ];
    for (const { name, config, token, reason, detail } of cases) {
      const result = await createVerifier(config).verify(token);
      assert.equal(result.ok, false, name);
      if (result.ok) continue;
      assert.equal(result.reason, reason, `${name}: ${result.detail}`);
      if (detail !== undefined) assert.match(result.detail, detail, name);
      if (token.length > 20) assert.ok(!result.detail.includes(token.slice(0, 20)), `${name}: detail must not quote the token`);
    }
  });

  test('an alg named after an Object.prototype member is an unknown algorithm, with every kind of key', async () => {
    // Each token is signed correctly with the configured key, so only the algorithm lookup can refuse it.
    const signed = (alg: string, sign: (input: string) => Buffer) => {
      const input = `${b64({ alg, typ: 'JWT' })}.${b64(claims())}`;
      return `${input}.${sign(input).toString('base64url')}`;
    };
    const kinds: [string, Config, (input: string) => Buffer][] = [
      ['HS', hsConfig(), (input) => createHmac('sha256', SECRET).update(input).digest()],
      ['RSA', publicKeyConfig(rsa.publicKey), (input) => cryptoSign('sha256', Buffer.from(input), rsa.privateKey)],
      ['Ed25519', publicKeyConfig(ed25519.publicKey), (input) => cryptoSign(null, Buffer.from(input), ed25519.privateKey)],
    ];
    for (const alg of ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf']) {
      for (const [kind, config, sign] of kinds) {
        const result = await createVerifier(config).verify(signed(alg, sign));
        assert.deepEqual(result, { ok: false, reason: 'token_invalid', detail: 'invalid algorithm' }, `${kind} key, alg ${alg}`);
      }
    }
  });

  test('a token within the clock tolerance is accepted', async () => {
    const verifier = createVerifier(hsConfig());
    expectOk(await verifier.verify(hs(claims({ nbf: now() + 2 }))));
    expectOk(await verifier.verify(hs(claims({ exp: now() - 1 }))));
  });

  test('JWT_REQUIRE_EXP=false accepts a token without exp', async () => {
    for (const [config, token] of [
      [hsConfig({ JWT_REQUIRE_EXP: 'false' }), hs({ sub: 'alice' })],
      [publicKeyConfig(ed25519.publicKey, { JWT_REQUIRE_EXP: 'false' }), edDsa({ sub: 'alice' }, ed25519.privateKey)],
    ] as const) {
      const result = expectOk(await createVerifier(config).verify(token));
      assert.equal(result.exp, undefined);
    }
  });

  test('issuer and audience are checked when configured', async () => {
    const env = { JWT_ISSUER: 'https://issuer.example', JWT_AUDIENCE: 'switchboard' };
    const good = { iss: 'https://issuer.example', aud: 'switchboard' };
    const cases: [string, Record<string, unknown>, boolean][] = [
      ['both match', good, true],
      ['audience in an array', { ...good, aud: ['other', 'switchboard'] }, true],
      ['wrong issuer', { ...good, iss: 'https://evil.example' }, false],
      ['no issuer', { aud: 'switchboard' }, false],
      ['wrong audience', { ...good, aud: 'other' }, false],
      ['no audience', { iss: 'https://issuer.example' }, false],
    ];
    const hsVerifier = createVerifier(hsConfig(env));
    const edVerifier = createVerifier(publicKeyConfig(ed25519.publicKey, env));
    for (const [name, extra, ok] of cases) {
      for (const [family, verifier, token] of [
        ['HS', hsVerifier, hs(claims(extra))],
        ['Ed', edVerifier, edDsa(claims(extra), ed25519.privateKey)],
      ] as const) {
        const result = await verifier.verify(token);
        assert.equal(result.ok, ok, `${family} ${name}`);
        if (!result.ok) assert.equal(result.reason, 'token_invalid');
      }
    }
    // Without JWT_ISSUER/JWT_AUDIENCE any iss/aud is fine.
    expectOk(await createVerifier(hsConfig()).verify(hs(claims({ iss: 'anyone', aud: 'anything' }))));
  });
});

function tamper(token: string): string {
  const [head, , signature] = token.split('.');
  return `${head}.${b64(claims({ sub: 'mallory' }))}.${signature}`;
}

describe('claims mapping', () => {
  const exp = now() + 3600;
  const valid: [string, Record<string, unknown>, Omit<Claims, 'roles'> & { roles: string[] }][] = [
    ['sub', { sub: 'alice', exp }, { user: 'alice', exp, roles: [] }],
    ['user_id fallback', { user_id: 'bob', exp }, { user: 'bob', exp, roles: [] }],
    ['sub wins over user_id', { sub: 'alice', user_id: 'bob', exp }, { user: 'alice', exp, roles: [] }],
    ['all name chars', { sub: 'a-Z_0.9:x@y', exp }, { user: 'a-Z_0.9:x@y', exp, roles: [] }],
    ['device', { sub: 'alice', device_id: 'phone-1', exp }, { user: 'alice', device: 'phone-1', exp, roles: [] }],
    ['roles filtered', { sub: 'a', roles: ['admin', 'root', 'tunnel', 'Admin'], exp }, { user: 'a', exp, roles: ['admin', 'tunnel'] }],
    ['empty roles', { sub: 'a', roles: [], exp }, { user: 'a', exp, roles: [] }],
    ['path_id without roles → tunnel', { sub: 't', path_id: '550e8400-e29b-41d4-a716-446655440000', exp }, { user: 't', exp, roles: ['tunnel'], pathId: '550e8400-e29b-41d4-a716-446655440000' }],
    ['path_id with explicit empty roles', { sub: 't', path_id: 'p', roles: [], exp }, { user: 't', exp, roles: [], pathId: 'p' }],
    ['path_id with admin role only', { sub: 't', path_id: 'p', roles: ['admin'], exp }, { user: 't', exp, roles: ['admin'], pathId: 'p' }],
    ['rooms', { sub: 'a', rooms: ['lobby', 'team-*', '*'], exp }, { user: 'a', exp, roles: [], rooms: ['lobby', 'team-*', '*'] }],
    ['empty rooms', { sub: 'a', rooms: [], exp }, { user: 'a', exp, roles: [], rooms: [] }],
    ['tunnels', { sub: 'a', tunnels: ['550e8400-e29b-41d4-a716-446655440000', 'team.a-*', '*'], exp }, { user: 'a', exp, roles: [], tunnels: ['550e8400-e29b-41d4-a716-446655440000', 'team.a-*', '*'] }],
    ['empty tunnels', { sub: 'a', tunnels: [], exp }, { user: 'a', exp, roles: [], tunnels: [] }],
  ];
  for (const [name, payload, expected] of valid) {
    test(`accepts: ${name}`, () => {
      const result = expectOk(claimsFromPayload(payload, true));
      assert.deepEqual({ ...result, roles: [...result.roles].sort() }, expected);
    });
  }

  const invalid: [string, unknown, RegExp][] = [
    ['no user', { exp }, /no sub or user_id/],
    ['space in user', { sub: 'a b', exp }, /sub\/user_id/],
    ['non-ascii user', { sub: 'zoë', exp }, /sub\/user_id/],
    ['empty user', { sub: '', exp }, /sub\/user_id/],
    ['129-char user', { sub: 'x'.repeat(129), exp }, /sub\/user_id/],
    ['numeric sub', { sub: 42, exp }, /sub\/user_id/],
    ['bad user_id', { user_id: 'a/b', exp }, /sub\/user_id/],
    ['bad device', { sub: 'a', device_id: 'a b', exp }, /device_id/],
    ['numeric device', { sub: 'a', device_id: 7, exp }, /device_id/],
    ['roles not an array', { sub: 'a', roles: 'admin', exp }, /roles/],
    ['roles with a non-string', { sub: 'a', roles: ['admin', 1], exp }, /roles/],
    ['rooms not an array', { sub: 'a', rooms: 'lobby', exp }, /rooms/],
    ['room with a space', { sub: 'a', rooms: ['bad room'], exp }, /rooms/],
    ['star in the middle', { sub: 'a', rooms: ['a*b'], exp }, /rooms/],
    ['double star', { sub: 'a', rooms: ['**'], exp }, /rooms/],
    ['empty room', { sub: 'a', rooms: [''], exp }, /rooms/],
    ['tunnels not an array', { sub: 'a', tunnels: 'p', exp }, /tunnels/],
    ['tunnel with a colon (a room name, not a path_id)', { sub: 'a', tunnels: ['a:b'], exp }, /tunnels/],
    ['tunnel star in the middle', { sub: 'a', tunnels: ['a*b'], exp }, /tunnels/],
    ['tunnel double star', { sub: 'a', tunnels: ['**'], exp }, /tunnels/],
    ['empty tunnel', { sub: 'a', tunnels: [''], exp }, /tunnels/],
    ['tunnel not a string', { sub: 'a', tunnels: [5], exp }, /tunnels/],
    ['path_id with a colon', { sub: 'a', path_id: 'a:b', exp }, /path_id/],
    ['path_id traversal', { sub: 'a', path_id: '../x', exp }, /path_id/],
    ['path_id not a string', { sub: 'a', path_id: 5, exp }, /path_id/],
    ['no exp', { sub: 'a' }, /no exp/],
    ['payload is a string', 'alice', /not a JSON object/],
    ['payload is an array', ['alice'], /not a JSON object/],
  ];
  for (const [name, payload, detail] of invalid) {
    test(`rejects: ${name}`, () => {
      const result = claimsFromPayload(payload, true);
      assert.equal(result.ok, false);
      if (!result.ok) {
        assert.equal(result.reason, 'token_invalid');
        assert.match(result.detail, detail);
      }
    });
  }

  test('rooms from a token drive roomAllowed', async () => {
    const token = hs(claims({ rooms: ['lobby', 'team-*'] }));
    const { rooms } = expectOk(await createVerifier(hsConfig()).verify(token));
    const cases: [readonly string[] | undefined, string, boolean][] = [
      [rooms, 'lobby', true],
      [rooms, 'lobby2', false],
      [rooms, 'team-', true],
      [rooms, 'team-red', true],
      [rooms, 'team', false],
      [rooms, 'other', false],
      [undefined, 'anything', true],
      [[], 'lobby', false],
      [['*'], 'anything', true],
    ];
    for (const [patterns, room, allowed] of cases) assert.equal(roomAllowed(patterns, room), allowed, `${JSON.stringify(patterns)} ${room}`);
  });

  test('tunnels from a token drive tunnelAllowed; no claim opens none, admin opens all', async () => {
    const verifier = createVerifier(hsConfig());
    const granted = expectOk(await verifier.verify(hs(claims({ tunnels: ['exact', 'team-*'] }))));
    const none = expectOk(await verifier.verify(hs(claims())));
    const admin = expectOk(await verifier.verify(hs(claims({ roles: ['admin'] }))));
    const cases: [Claims, string, boolean][] = [
      [granted, 'exact', true],
      [granted, 'exact2', false],
      [granted, 'team-', true],
      [granted, 'team-red', true],
      [granted, 'team', false],
      [none, 'exact', false],
      [{ ...none, tunnels: [] }, 'exact', false],
      [{ ...none, tunnels: ['*'] }, 'anything', true],
      [admin, 'anything', true],
    ];
    for (const [holder, pathId, allowed] of cases) assert.equal(tunnelAllowed(holder, pathId), allowed, `${JSON.stringify(holder.tunnels)} ${pathId}`);
  });
});

test('JWKS: keys by kid, cached, refetched on an unknown kid', async (t) => {
  const rsa2 = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = (key: KeyObject, kid: string, extra: Partial<JsonWebKey> = {}) => ({ ...key.export({ format: 'jwk' }), kid, use: 'sig', ...extra });
  const keys = [jwk(rsa.publicKey, 'rsa-1', { alg: 'RS256' }), jwk(p256.publicKey, 'ec-1'), jwk(ed25519.publicKey, 'ed-1')];
  let fetches = 0;
  const server: Server = createServer((_req, res) => {
    fetches++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const { port } = server.address() as AddressInfo;
  const verifier = createVerifier(loadConfig({ JWT_JWKS_URL: `http://127.0.0.1:${port}/.well-known/jwks.json` }));
  const rs = (payload: object, kid: string, key: KeyObject = rsa.privateKey, algorithm: jwt.Algorithm = 'RS256') =>
    jwt.sign(payload, key, { algorithm, keyid: kid });

  await t.test('tokens verify with the key their kid names', async () => {
    expectOk(await verifier.verify(rs(claims(), 'rsa-1')));
    expectOk(await verifier.verify(jwt.sign(claims(), p256.privateKey, { algorithm: 'ES256', keyid: 'ec-1' })));
    expectOk(await verifier.verify(edDsa(claims(), ed25519.privateKey, { alg: 'EdDSA', kid: 'ed-1' })));
  });

  await t.test('known kids are served from the cache', async () => {
    const before = fetches;
    for (let i = 0; i < 5; i++) expectOk(await verifier.verify(rs(claims(), 'rsa-1')));
    assert.equal(fetches, before);
  });

  await t.test('wrong key, wrong alg for the JWK, HS and none are rejected', async () => {
    const before = fetches;
    const cases: [string, string, RegExp][] = [
      ['signed by another key', rs(claims(), 'rsa-1', rsaOther.privateKey), /invalid signature/],
      ['PS256 with a JWK that declares RS256', rs(claims(), 'rsa-1', rsa.privateKey, 'PS256'), /invalid algorithm/],
      ['ES256 token naming the RSA kid', jwt.sign(claims(), p256.privateKey, { algorithm: 'ES256', keyid: 'rsa-1' }), /invalid algorithm/],
      ['HS256 naming a JWKS kid', jwt.sign(claims(), SECRET, { algorithm: 'HS256', keyid: 'rsa-1' }), /invalid algorithm/],
      ['alg none', `${b64({ alg: 'none', kid: 'rsa-1' })}.${b64(claims())}.`, /invalid algorithm/],
      ['expired', rs(claims({ exp: now() - 60 }), 'rsa-1'), /jwt expired/],
    ];
    for (const [name, token, detail] of cases) {
      const result = await verifier.verify(token);
      assert.equal(result.ok, false, name);
      if (!result.ok) assert.match(result.detail, detail, name);
    }
    assert.equal(fetches, before, 'none of these may cause a fetch');
  });

  await t.test('a rotated-in key is found by refetching on its unknown kid', async () => {
    const token = rs(claims(), 'rsa-2', rsa2.privateKey);
    let before = fetches;
    const missing = await verifier.verify(token);
    assert.deepEqual(missing, { ok: false, reason: 'token_invalid', detail: 'no JWKS key with kid "rsa-2"' });
    assert.equal(fetches, before + 1, 'an unknown kid refetches');
    keys.push(jwk(rsa2.publicKey, 'rsa-2'));
    before = fetches;
    expectOk(await verifier.verify(token));
    assert.equal(fetches, before + 1);
    expectOk(await verifier.verify(token));
    assert.equal(fetches, before + 1, 'then it is cached');
  });
});

test('JWKS: an unreachable endpoint gives token_invalid and a log line without the token', async () => {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const { port } = closed.address() as AddressInfo;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString('utf8'));
      callback();
    },
  });
  const verifier = new JwtVerifier({ config: loadConfig({ JWT_JWKS_URL: `http://127.0.0.1:${port}/jwks` }), logger: createLogger('warn', sink) });
  const token = jwt.sign(claims(), rsa.privateKey, { algorithm: 'RS256', keyid: 'k' });
  assert.deepEqual(await verifier.verify(token), { ok: false, reason: 'token_invalid', detail: 'JWKS endpoint unavailable' });
  assert.equal(lines.length, 1);
  assert.match(lines[0] ?? '', /JWKS fetch failed/);
  assert.ok(!(lines[0] ?? '').includes(token.split('.')[1] ?? ''));
});

describe('TokenSigner', () => {
  const hsSigner = (extra: Record<string, string> = {}): { signer: TokenSigner; verifier: JwtVerifier } => {
    const config = hsConfig(extra);
    const signer = signerFromConfig(config);
    assert.ok(signer);
    return { signer, verifier: createVerifier(config) };
  };

  test('app token round trip', async () => {
    const { signer, verifier } = hsSigner();
    const token = signer.signApp({ user: 'alice', device: 'laptop', roles: ['admin'], rooms: ['lobby', 'team-*'], ttlS: 600 });
    assert.equal(jwt.decode(token, { complete: true })?.header.alg, 'HS256');
    const result = expectOk(await verifier.verify(token));
    assert.equal(result.user, 'alice');
    assert.equal(result.device, 'laptop');
    assert.deepEqual([...result.roles], ['admin']);
    assert.deepEqual(result.rooms, ['lobby', 'team-*']);
    assert.ok(result.exp !== undefined && Math.abs(result.exp - (now() + 600)) <= 1);
    const minimal = expectOk(await verifier.verify(signer.signApp({ user: 'bob', ttlS: 60 })));
    assert.deepEqual({ ...minimal, roles: [...minimal.roles] }, { user: 'bob', exp: minimal.exp, roles: [] });
  });

  test('tunnel token has the claims the Telephone sidecar expects', async () => {
    const { signer, verifier } = hsSigner();
    const token = signer.signTunnel({ pathId: '550e8400-e29b-41d4-a716-446655440000', ttlS: 3600 });
    const payload = jwt.decode(token);
    assert.ok(payload !== null && typeof payload === 'object');
    assert.deepEqual(Object.keys(payload).sort(), ['exp', 'iat', 'jti', 'path_id', 'roles', 'sub']);
    assert.equal(payload.sub, 'tunnel-550e8400-e29b-41d4-a716-446655440000');
    assert.equal(payload.path_id, '550e8400-e29b-41d4-a716-446655440000');
    assert.deepEqual(payload.roles, ['tunnel']);
    assert.match(String(payload.jti), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.ok(Number.isInteger(payload.iat) && (payload.iat ?? Infinity) <= now());
    assert.equal(payload.exp, (payload.iat ?? 0) + 3600);
    const result = expectOk(await verifier.verify(token));
    assert.equal(result.pathId, '550e8400-e29b-41d4-a716-446655440000');
    assert.ok(result.roles.has('tunnel'));
    assert.equal(jwt.decode(signer.signTunnel({ pathId: 'p1', user: 'svc', ttlS: 60 }), { json: true })?.sub, 'svc');
  });

  test('refresh keeps sub, path_id and roles with a new jti, iat and exp', async () => {
    const { signer, verifier } = hsSigner();
    // A Telephone-era token: path_id, no roles.
    const original = hs({ sub: 'sidecar', path_id: 'p1', jti: 'old-jti', iat: now() - 100, exp: now() + 10 });
    const claimsIn = expectOk(await verifier.verify(original));
    const refreshed = signer.refreshTunnel(claimsIn, 3600);
    const payload = jwt.decode(refreshed, { json: true });
    assert.ok(payload);
    assert.equal(payload.sub, 'sidecar');
    assert.equal(payload.path_id, 'p1');
    assert.deepEqual(payload.roles, ['tunnel']);
    assert.notEqual(payload.jti, 'old-jti');
    assert.ok((payload.iat ?? 0) >= now() - 1);
    assert.equal(payload.exp, (payload.iat ?? 0) + 3600);
    const again = expectOk(await verifier.verify(refreshed));
    assert.equal(again.pathId, 'p1');
    assert.notEqual(jwt.decode(signer.refreshTunnel(again, 3600), { json: true })?.jti, payload.jti);
    assert.throws(() => signer.refreshTunnel({ user: 'alice', roles: new Set() }, 60), /no path_id/);
  });

  test('issuer and audience are set when configured', async () => {
    const { signer, verifier } = hsSigner({ JWT_ISSUER: 'switchboard-test', JWT_AUDIENCE: 'apps' });
    const token = signer.signApp({ user: 'alice', ttlS: 60 });
    const payload = jwt.decode(token, { json: true });
    assert.equal(payload?.iss, 'switchboard-test');
    assert.equal(payload?.aud, 'apps');
    expectOk(await verifier.verify(token));
    expectOk(await verifier.verify(signer.signTunnel({ pathId: 'p', ttlS: 60 })));
  });

  test('asymmetric private keys sign with the algorithm of their type and verify with the public key', async () => {
    const cases: [string, { publicKey: KeyObject; privateKey: KeyObject }, string][] = [
      ['rsa', rsa, 'RS256'],
      ['rsa-pss', rsaPss, 'PS256'],
      ['P-256', p256, 'ES256'],
      ['P-384', p384, 'ES384'],
      ['P-521', p521, 'ES512'],
      ['ed25519', ed25519, 'EdDSA'],
      ['ed448', ed448, 'EdDSA'],
    ];
    for (const [name, pair, algorithm] of cases) {
      // The private key as one line with literal \n, the way env files carry it.
      const config = loadConfig({ JWT_PUBLIC_KEY: pem(pair.publicKey), JWT_PRIVATE_KEY: pem(pair.privateKey).replace(/\n/g, '\\n') });
      const signer = signerFromConfig(config);
      assert.ok(signer, name);
      assert.equal(signer.algorithm, algorithm, name);
      const token = signer.signTunnel({ pathId: 'p', ttlS: 60 });
      assert.equal(jwt.decode(token, { complete: true })?.header.alg, algorithm, name);
      assert.equal(expectOk(await createVerifier(config).verify(token)).pathId, 'p', name);
    }
  });

  test('no signer without a signing key; a mismatched or bad private key is an error', () => {
    assert.equal(signerFromConfig(publicKeyConfig(rsa.publicKey)), undefined);
    assert.equal(signerFromConfig(loadConfig({ JWT_JWKS_URL: 'https://issuer.example/jwks.json' })), undefined);
    assert.throws(
      () => signerFromConfig(loadConfig({ JWT_PUBLIC_KEY: pem(rsa.publicKey), JWT_PRIVATE_KEY: pem(rsaOther.privateKey) })),
      /JWT_PRIVATE_KEY: does not match/,
    );
    assert.throws(() => signerFromConfig(loadConfig({ JWT_SECRET: SECRET, JWT_PRIVATE_KEY: pem(rsa.privateKey) })), /cannot be used with JWT_SECRET/);
    assert.throws(() => signerFromConfig(loadConfig({ JWT_PUBLIC_KEY: pem(rsa.publicKey), JWT_PRIVATE_KEY: 'nope' })), /JWT_PRIVATE_KEY: cannot parse an unencrypted PEM/);
    // With a JWKS there is nothing to compare against: the private key is trusted.
    assert.ok(signerFromConfig(loadConfig({ JWT_JWKS_URL: 'https://issuer.example/jwks.json', JWT_PRIVATE_KEY: pem(p256.privateKey) })));
  });

  test('claims that the verifier would refuse are refused when signing', () => {
    const { signer } = hsSigner();
    assert.throws(() => signer.signApp({ user: 'a b', ttlS: 60 }), RangeError);
    assert.throws(() => signer.signApp({ user: 'a', device: '', ttlS: 60 }), RangeError);
    assert.throws(() => signer.signApp({ user: 'a', rooms: ['a*b'], ttlS: 60 }), RangeError);
    assert.throws(() => signer.signApp({ user: 'a', ttlS: 0 }), RangeError);
    assert.throws(() => signer.signApp({ user: 'a', ttlS: 1.5 }), RangeError);
    assert.throws(() => signer.signTunnel({ pathId: 'a/b', ttlS: 60 }), RangeError);
  });
});
