// SPEC §6.4: the `switchboard` CLI as operators run it — `token`,
// `check-config`, `serve` (flags, validation with exit code 2, `--dev`), and
// package.json's bin being plain JavaScript that `node` runs.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import jwt from 'jsonwebtoken';
import { http } from '../helpers/http';
import { startTestNode, TEST_SECRET } from '../helpers/node';
import { NODE_FLAGS } from '../../src/cli/node-flags';
import { childEnv, REPO_ROOT, runCli, spawnCli, spawnNode } from '../helpers/process';
import { TestClient } from '../helpers/ws-client';

const key = { JWT_SECRET: TEST_SECRET };

const verify = (token: string) => jwt.verify(token, TEST_SECRET, { algorithms: ['HS256'] }) as jwt.JwtPayload;

/** Lines of `text`, without blank ones. */
const nonEmptyLines = (text: string) => text.split('\n').filter((l) => l.trim() !== '');

describe('switchboard token', () => {
  test('an app token carries sub, device_id, roles, rooms, tunnels and exp = iat + ttl, signed with JWT_SECRET', async (t) => {
    const res = await runCli(t, key, ['token', '--user', 'u1', '--device', 'd1', '--roles', 'admin', '--rooms', 'a*,b', '--tunnels', 'my-app,team-*', '--ttl', '60']);
    assert.equal(res.code, 0, res.stderr);
    const lines = nonEmptyLines(res.stdout);
    assert.equal(lines.length, 1, `expected just the token, got:\n${res.stdout}`);
    const payload = verify(lines[0]!);
    assert.equal(payload.sub, 'u1');
    assert.equal(payload.device_id, 'd1');
    assert.deepEqual(payload.roles, ['admin']);
    assert.deepEqual(payload.rooms, ['a*', 'b']);
    assert.deepEqual(payload.tunnels, ['my-app', 'team-*']);
    assert.equal(typeof payload.iat, 'number');
    assert.equal(payload.exp! - payload.iat!, 60);
    assert.ok(Math.abs(payload.iat! - Date.now() / 1000) < 60, `iat ${payload.iat} is not now`);

    // The token is accepted by a node holding the same secret.
    const node = await startTestNode(t);
    const client = await TestClient.welcomed(node.port, lines[0]!);
    t.after(() => client.close());
    assert.equal(client.welcome.user, 'u1');
    assert.equal(client.welcome.device, 'd1');
  });

  test('a tunnel token carries sub, jti, path_id, iat, exp and roles ["tunnel"]', async (t) => {
    const res = await runCli(t, key, ['token', '--tunnel', 'my-path']);
    assert.equal(res.code, 0, res.stderr);
    const payload = verify(nonEmptyLines(res.stdout)[0]!);
    assert.deepEqual(Object.keys(payload).sort(), ['exp', 'iat', 'jti', 'path_id', 'roles', 'sub']);
    assert.equal(typeof payload.sub, 'string');
    assert.notEqual(payload.sub, '');
    assert.equal(typeof payload.jti, 'string');
    assert.notEqual(payload.jti, '');
    assert.equal(payload.path_id, 'my-path');
    assert.deepEqual(payload.roles, ['tunnel']);
    assert.ok(payload.exp! > payload.iat!);
  });

  const badFlags: [string, string[]][] = [
    ['an unknown role', ['--user', 'u1', '--roles', 'superuser']],
    ['a non-numeric --ttl', ['--user', 'u1', '--ttl', 'abc']],
    ['a zero --ttl', ['--user', 'u1', '--ttl', '0']],
    ['a user id with a space', ['--user', 'bad user']],
    ['an invalid room pattern', ['--user', 'u1', '--rooms', 'a b']],
    ['an invalid tunnel pattern', ['--user', 'u1', '--tunnels', 'a/b']],
    ['no --user', []],
    ['an unknown flag', ['--user', 'u1', '--bogus']],
  ];
  for (const [name, args] of badFlags) {
    test(`${name} → exit 2, a message on stderr, no token`, async (t) => {
      const res = await runCli(t, key, ['token', ...args]);
      assert.equal(res.code, 2, `exit ${res.code}; stderr: ${res.stderr}`);
      assert.notEqual(res.stderr.trim(), '');
      assert.equal(res.stdout.trim(), '');
    });
  }

  test('no signing key configured → exit 2 naming the missing key', async (t) => {
    const res = await runCli(t, {}, ['token', '--user', 'u1']);
    assert.equal(res.code, 2, res.stderr);
    assert.match(res.stderr, /JWT_SECRET/);
    assert.equal(res.stdout.trim(), '');
  });
});

describe('switchboard check-config', () => {
  test('prints the effective configuration as JSON with secrets redacted', async (t) => {
    const redisPassword = 'hunter2-redis-password';
    const res = await runCli(t, { ...key, REDIS_URL: `redis://:${redisPassword}@127.0.0.1:6379`, LOG_LEVEL: 'warn' }, ['check-config']);
    assert.equal(res.code, 0, res.stderr);
    const config = JSON.parse(res.stdout) as Record<string, unknown>;
    assert.equal(config.JWT_SECRET, '(redacted)');
    assert.equal(config.REDIS_URL, '(redacted)');
    assert.equal(config.LOG_LEVEL, 'warn');
    assert.equal(config.PORT, 0);
    assert.equal(config.MAX_PAYLOAD_BYTES, 65536);
    for (const secret of [TEST_SECRET, redisPassword]) {
      assert.ok(!res.stdout.includes(secret), 'a secret appears on stdout');
      assert.ok(!res.stderr.includes(secret), 'a secret appears on stderr');
    }
  });

  test('--flag equivalents of the variables are applied (--max-payload-bytes 1000)', async (t) => {
    const res = await runCli(t, key, ['check-config', '--max-payload-bytes', '1000']);
    assert.equal(res.code, 0, res.stderr);
    assert.equal((JSON.parse(res.stdout) as Record<string, unknown>).MAX_PAYLOAD_BYTES, 1000);
  });

  const badValues: [string, Record<string, string>][] = [
    ['PORT', { ...key, PORT: 'abc' }],
    ['MAX_PAYLOAD_BYTES', { ...key, MAX_PAYLOAD_BYTES: '-1' }],
    ['LOG_LEVEL', { ...key, LOG_LEVEL: 'loud' }],
    ['REDIS_URL', { ...key, REDIS_URL: 'http://x' }],
    ['JWT_SECRET', {}],
    ['JWT_JWKS_URL', { JWT_JWKS_URL: 'http://keys.example.com/jwks.json' }],
    ['RATE_LIMIT_POINTS', { ...key, RATE_LIMIT_POINTS: '0' }],
  ];
  for (const [name, env] of badValues) {
    test(`bad ${name} → exit 2 and one line starting with ${name}`, async (t) => {
      const res = await runCli(t, env, ['check-config']);
      assert.equal(res.code, 2, `exit ${res.code}; stdout: ${res.stdout}`);
      const lines = nonEmptyLines(res.stderr);
      assert.equal(lines.length, 1, `expected one line, got:\n${res.stderr}`);
      assert.match(lines[0]!, new RegExp(`^${name}\\b`));
      assert.equal(res.stdout.trim(), '');
    });
  }

  test('several bad variables at once → exit 2 and exactly one line per bad variable, each starting with its name', async (t) => {
    const res = await runCli(t, { PORT: 'abc', MAX_PAYLOAD_BYTES: '-1', LOG_LEVEL: 'loud', REDIS_URL: 'http://x' }, ['check-config']);
    assert.equal(res.code, 2);
    const lines = nonEmptyLines(res.stderr);
    const named = lines.map((l) => /^([A-Z][A-Z0-9_]*)\b/.exec(l)?.[1]);
    assert.ok(named.every((n) => n !== undefined), `a line does not start with a variable name:\n${res.stderr}`);
    assert.deepEqual(named.sort(), ['JWT_SECRET', 'LOG_LEVEL', 'MAX_PAYLOAD_BYTES', 'PORT', 'REDIS_URL'], `stderr:\n${res.stderr}`);
    assert.ok(!res.stderr.includes('http://x'), 'REDIS_URL is a secret variable: its value is not shown');
  });
});

describe('switchboard serve', () => {
  test('a bad value → exit 2 with the variable named, never listening', async (t) => {
    const res = await runCli(t, { ...key, PORT: 'abc' }, ['serve']);
    assert.equal(res.code, 2, `exit ${res.code}; stdout: ${res.stdout}`);
    assert.match(res.stderr, /^PORT\b/m);
    assert.ok(!res.stdout.includes('switchboard listening'));
  });

  test('no JWT key outside dev mode → exit 2, never listening', async (t) => {
    const res = await runCli(t, {}, ['serve']);
    assert.equal(res.code, 2, `exit ${res.code}; stdout: ${res.stdout}`);
    assert.match(res.stderr, /^JWT_SECRET\b/m);
    assert.ok(!res.stdout.includes('switchboard listening'));
  });

  test('--port and --max-payload-bytes flags override the environment', async (t) => {
    // PORT=abc in the environment would be refused: the flag wins.
    const node = await spawnNode(t, { ...key, PORT: 'abc' }, ['serve', '--port', '0', '--max-payload-bytes', '1000']);
    assert.equal((await http(node.port, 'GET', '/live')).status, 200);
    // Without --dev or DEMO=true there is no demo page.
    assert.equal((await http(node.port, 'GET', '/')).status, 404);

    const token = jwt.sign({ sub: 'u1', exp: Math.floor(Date.now() / 1000) + 600 }, TEST_SECRET, { algorithm: 'HS256' });
    const client = await TestClient.welcomed(node.port, token);
    t.after(() => client.close());
    assert.equal((await client.request({ type: 'ping' })).type, 'pong');
    // A frame over the 1000 bytes set by the flag closes the connection with 1009.
    client.send({ type: 'message', to: 'u2', payload: 'x'.repeat(2000) });
    assert.equal((await client.waitClosed()).code, 1009);
  });

  test('--dev prints two ready tokens (alice, bob) that authenticate, and serves the demo page', async (t) => {
    const node = await spawnNode(t, {}, ['serve', '--dev']);
    const demoUrl = async (tab: number, user: string) => {
      const line = await node.waitForLine(new RegExp(`tab ${tab} \\(${user}\\):\\s+http://`));
      const match = /(http:\/\/\S+)/.exec(line);
      assert.ok(match?.[1] !== undefined, line);
      return new URL(match[1]);
    };
    const tokens: Record<string, string> = {};
    for (const [tab, user] of [[1, 'alice'], [2, 'bob']] as const) {
      const url = await demoUrl(tab, user);
      assert.equal(Number(url.port), node.port, `the printed URL ${url.origin} is not the listening port ${node.port}`);
      const token = url.searchParams.get('token');
      assert.ok(token !== null && token !== '', `no token in ${url.pathname}`);
      tokens[user] = token;
    }

    const alice = await TestClient.welcomed(node.port, tokens.alice!);
    const bob = await TestClient.welcomed(node.port, tokens.bob!);
    t.after(() => [alice, bob].forEach((c) => c.close()));
    assert.equal(alice.welcome.user, 'alice');
    assert.equal(bob.welcome.user, 'bob');
    // The two demo users can signal each other, as the demo page does.
    assert.equal((await alice.request({ type: 'offer', to: 'bob', payload: { sdp: 'x' } }, 'ack')).type, 'ack');
    assert.deepEqual((await bob.next('offer')).payload, { sdp: 'x' });

    const page = await http(node.port, 'GET', '/');
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    assert.match(page.body, /<html/i);
  });
});

describe('switchboard (entry point)', () => {
  test('an unknown command → exit 2 with a message on stderr', async (t) => {
    const res = await runCli(t, key, ['frobnicate']);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /unknown command/i);
  });

  test('unknown flags on check-config and serve → exit 2', async (t) => {
    for (const command of ['check-config', 'serve']) {
      const res = await runCli(t, key, [command, '--no-such-flag']);
      assert.equal(res.code, 2, `${command}: exit ${res.code}; stderr: ${res.stderr}`);
      assert.match(res.stderr, /no-such-flag/);
      assert.ok(!res.stdout.includes('switchboard listening'));
    }
  });

  test('the switchboard binary runs with the Node flags it is tuned for; plain `node` without them is warned about', async (t) => {
    const env = { JWT_SECRET: TEST_SECRET, NODE_OPTIONS: '' };
    const binary = spawnCli(t, env, ['serve'], 'shebang');
    const plain = spawnCli(t, env, ['serve'], 'plain');
    const warning = 'running without the Node flags Switchboard is tuned for: idle connections cost more memory (run the switchboard binary, or set NODE_OPTIONS)';
    for (const node of [binary, plain]) await node.waitForLine(/switchboard listening/, 10_000);
    assert.deepEqual(binary.logs.filter((l) => l.msg === warning), []);
    assert.deepEqual(plain.logs.filter((l) => l.msg === warning).map((l) => l.missing), [NODE_FLAGS]);
    for (const node of [binary, plain]) {
      node.kill('SIGTERM');
      assert.deepEqual(await node.exited, { code: 0, signal: null });
    }
  });

  test("package.json's bin.switchboard is a JavaScript file that plain node runs", async () => {
    const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { bin?: Record<string, string> };
    const bin = pkg.bin?.switchboard;
    assert.ok(bin !== undefined, 'package.json has no bin.switchboard');
    const file = path.resolve(REPO_ROOT, bin);
    assert.ok(existsSync(file), `${bin} does not exist (has the build run?)`);
    assert.match(file, /\.(c?js|mjs)$/);
    // The shebang runs node with the flags Switchboard is tuned for (node-flags.ts): the installed binary carries them.
    assert.equal(readFileSync(file, 'utf8').split('\n')[0], `#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`);
    // No loader, no NODE_OPTIONS: exactly what `node <bin> serve` in an image does.
    const env = childEnv(key);
    delete env.NODE_OPTIONS;
    const { stdout } = await promisify(execFile)(process.execPath, [file, 'check-config'], { cwd: REPO_ROOT, env, timeout: 30_000 });
    assert.equal((JSON.parse(stdout) as Record<string, unknown>).JWT_SECRET, '(redacted)');
  });
});
