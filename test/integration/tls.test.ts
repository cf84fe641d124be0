// TLS on the node's listener (TLS_CERT_FILE / TLS_KEY_FILE, uWS SSLApp): the
// app WebSocket, the HTTP API, /health, /metrics and the tunnel endpoints all
// speak TLS on PORT, plain clients cannot connect there, METRICS_PORT stays
// plain HTTP, and every way the files can be wrong is a config error naming
// the variable (exit code 2). Certificates are made by the openssl CLI into a
// temporary directory.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { ConfigError, loadConfig } from '../../src/config/load';
import { startBackend } from '../helpers/backend';
import { BaselineSidecar } from '../helpers/baseline-sidecar';
import { http } from '../helpers/http';
import { makeTestCertificate } from '../helpers/certificates';
import { startTestNode, TEST_SECRET } from '../helpers/node';
import { runCli } from '../helpers/process';
import { freePort } from '../helpers/redis';
import { TestClient } from '../helpers/ws-client';

const run = promisify(execFile);
const PASSPHRASE = 'correct horse battery staple';

interface Files {
  dir: string;
  cert: string;
  key: string;
  /** The same key, encrypted with PASSPHRASE. */
  encryptedKey: string;
  /** A key that does not belong to `cert`. */
  otherKey: string;
  ca: Buffer;
}

let files: Files;

before(async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'switchboard-tls-'));
  const at = (name: string) => path.join(dir, name);
  await makeTestCertificate(dir);
  await run('openssl', ['pkcs8', '-topk8', '-v2', 'aes-256-cbc', '-in', at('key.pem'), '-out', at('encrypted-key.pem'), '-passout', `pass:${PASSPHRASE}`]);
  const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' });
  writeFileSync(at('other-key.pem'), other);
  files = { dir, cert: at('cert.pem'), key: at('key.pem'), encryptedKey: at('encrypted-key.pem'), otherKey: at('other-key.pem'), ca: readFileSync(at('cert.pem')) };
});

after(() => rmSync(files.dir, { recursive: true, force: true }));

const tlsEnv = () => ({ TLS_CERT_FILE: files.cert, TLS_KEY_FILE: files.key });

interface HttpsResult {
  status: number;
  body: string;
}

/** One HTTPS request trusting only the test certificate (no keep-alive socket outlives it). */
function https(port: number, method: string, urlPath: string, headers: Record<string, string> = {}, body?: string): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', servername: 'localhost', port, method, path: urlPath, ca: files.ca, agent: false, headers: { connection: 'close', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const wss = (port: number, token: string) => TestClient.connectUrl(`wss://localhost:${port}/ws?token=${token}`, { ca: files.ca });

describe('TLS on PORT', () => {
  test('wss:// gets the welcome and relays a message; https serves /health, /metrics and the HTTP API', async (t) => {
    const node = await startTestNode(t, tlsEnv());
    assert.equal(node.logs.find((r) => r.msg === 'switchboard listening')?.tls, true);
    const alice = await wss(node.port, node.token({ sub: 'alice', device_id: 'a1' }));
    const bob = await wss(node.port, node.token({ sub: 'bob', device_id: 'b1' }));
    t.after(() => {
      alice.close();
      bob.close();
    });
    assert.equal((await alice.next('welcome')).user, 'alice');
    await bob.next('welcome');
    alice.send({ type: 'offer', to: 'bob', id: 'm1', payload: { sdp: 'v=0' } });
    assert.deepEqual(await bob.next('offer'), { type: 'offer', from: 'alice', from_device: 'a1', payload: { sdp: 'v=0' } });
    assert.deepEqual(await alice.next('ack'), { type: 'ack', id: 'm1' });

    const health = await https(node.port, 'GET', '/health');
    assert.equal(health.status, 200, health.body);
    assert.equal((JSON.parse(health.body) as { status: string; connections: number }).status, 'healthy');
    const metrics = await https(node.port, 'GET', '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /^signaling_active_connections(\{[^}]*\})? 2$/m);
    const admin = `Bearer ${node.token({ sub: 'ops', roles: ['admin'] })}`;
    const presence = await https(node.port, 'GET', '/v1/presence?users=alice,carol', { authorization: admin });
    assert.deepEqual(JSON.parse(presence.body), { users: { alice: 'online', carol: 'offline' } });
    const published = await https(node.port, 'POST', '/v1/publish', { authorization: admin, 'content-type': 'application/json' }, '{"to":"bob","event":"e","payload":1}');
    assert.equal(published.status, 202, published.body);
    assert.deepEqual(await bob.next('event'), { type: 'event', event: 'e', payload: 1 });
  });

  test('a plain ws:// client and a plain http:// request cannot talk to the TLS port', async (t) => {
    const node = await startTestNode(t, tlsEnv());
    await assert.rejects(TestClient.connect(node.port, { token: node.token({ sub: 'alice' }) }));
    await assert.rejects(http(node.port, 'GET', '/health'));
    // The node is still fine afterwards.
    assert.equal((await https(node.port, 'GET', '/live')).status, 200);
  });

  test('an encrypted key with TLS_KEY_PASSPHRASE; METRICS_PORT stays plain HTTP', async (t) => {
    const metricsPort = await freePort();
    const node = await startTestNode(t, { TLS_CERT_FILE: files.cert, TLS_KEY_FILE: files.encryptedKey, TLS_KEY_PASSPHRASE: PASSPHRASE, METRICS_PORT: String(metricsPort) });
    const client = await wss(node.port, node.token({ sub: 'alice' }));
    t.after(() => client.close());
    await client.next('welcome');
    const scraped = await http(metricsPort, 'GET', '/metrics');
    assert.equal(scraped.status, 200);
    assert.match(scraped.body, /^signaling_active_connections(\{[^}]*\})? 1$/m);
  });

  test('a tunnel sidecar connects over wss:// and https:// requests reach its back end with X-Forwarded-Proto: https', async (t) => {
    const node = await startTestNode(t, tlsEnv());
    const backend = await startBackend(t);
    const pathId = 'tls-app';
    const token = node.token({ sub: 'tunnel-tls', jti: 'j1', path_id: pathId, roles: ['tunnel'] });
    await BaselineSidecar.connect(t, node.port, token, pathId, { backend: backend.origin, ca: files.ca });
    const res = await https(node.port, 'GET', `/call/${pathId}/echo?a=1`);
    assert.equal(res.status, 200, res.body);
    const echoed = JSON.parse(res.body) as { path: string; query: string; headers: Record<string, string> };
    assert.deepEqual([echoed.path, echoed.query, echoed.headers['x-forwarded-proto']], ['/echo', 'a=1', 'https']);
  });
});

describe('TLS configuration errors: one line naming the variable, exit code 2', () => {
  const key = { JWT_SECRET: TEST_SECRET };

  test('serve with a certificate but no key, or a missing certificate file, exits 2 naming the variable', async (t) => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ TLS_CERT_FILE: files.cert }, /^TLS_KEY_FILE: required with TLS_CERT_FILE/],
      [{ TLS_CERT_FILE: path.join(files.dir, 'missing.pem'), TLS_KEY_FILE: files.key }, /^TLS_CERT_FILE: cannot read .*missing\.pem \(ENOENT\)$/],
    ];
    await Promise.all(
      cases.map(async ([env, line]) => {
        const res = await runCli(t, { ...key, ...env }, ['serve']);
        assert.equal(res.code, 2, `exit ${res.code}; stderr: ${res.stderr}`);
        const lines = res.stderr.split('\n').filter((l) => l.trim() !== '');
        assert.equal(lines.length, 1, res.stderr);
        assert.match(lines[0]!, line);
        assert.ok(!res.stdout.includes('switchboard listening'));
      }),
    );
  });

  const problemsOf = (env: Record<string, string>): string[] => {
    try {
      loadConfig({ ...key, ...env });
    } catch (error) {
      if (error instanceof ConfigError) return error.problems;
      throw error;
    }
    return [];
  };

  test('each bad combination is one line starting with the variable to fix', () => {
    const notPem = path.join(files.dir, 'not.pem');
    writeFileSync(notPem, 'hello\n');
    const cases: [string, Record<string, string>, RegExp][] = [
      ['a key without a certificate', { TLS_KEY_FILE: files.key }, /^TLS_CERT_FILE: required with TLS_KEY_FILE/],
      ['a passphrase alone', { TLS_KEY_PASSPHRASE: 'x' }, /^TLS_KEY_PASSPHRASE: set without/],
      ['an unreadable key file', { TLS_CERT_FILE: files.cert, TLS_KEY_FILE: files.dir }, /^TLS_KEY_FILE: cannot read .* \(EISDIR\)$/],
      ['a certificate file holding no certificate', { TLS_CERT_FILE: notPem, TLS_KEY_FILE: files.key }, /^TLS_CERT_FILE: .*not\.pem holds no PEM certificate$/],
      ['a key file holding no key', { TLS_CERT_FILE: files.cert, TLS_KEY_FILE: notPem }, /^TLS_KEY_FILE: .*not\.pem holds no PEM private key$/],
      ['a key that is not the certificate\'s', { TLS_CERT_FILE: files.cert, TLS_KEY_FILE: files.otherKey }, /^TLS_KEY_FILE: the key in .* does not belong to the certificate/],
      ['an encrypted key without a passphrase', { TLS_CERT_FILE: files.cert, TLS_KEY_FILE: files.encryptedKey }, /^TLS_KEY_PASSPHRASE: required: the key in .* is encrypted$/],
      ['a wrong passphrase', { TLS_CERT_FILE: files.cert, TLS_KEY_FILE: files.encryptedKey, TLS_KEY_PASSPHRASE: 'wrong' }, /^TLS_KEY_PASSPHRASE: does not decrypt the key/],
    ];
    for (const [name, env, line] of cases) {
      const problems = problemsOf(env);
      assert.equal(problems.length, 1, `${name}: ${problems.join(' | ')}`);
      assert.match(problems[0]!, line, name);
    }
    assert.deepEqual(problemsOf({ TLS_CERT_FILE: files.cert, TLS_KEY_FILE: files.encryptedKey, TLS_KEY_PASSPHRASE: PASSPHRASE }), []);
  });

  test('check-config redacts the passphrase', async (t) => {
    const res = await runCli(t, { ...key, TLS_CERT_FILE: files.cert, TLS_KEY_FILE: files.encryptedKey, TLS_KEY_PASSPHRASE: PASSPHRASE }, ['check-config']);
    assert.equal(res.code, 0, res.stderr);
    const config = JSON.parse(res.stdout) as Record<string, unknown>;
    assert.equal(config.TLS_KEY_PASSPHRASE, '(redacted)');
    assert.equal(config.TLS_CERT_FILE, files.cert);
    assert.ok(!res.stdout.includes(PASSPHRASE));
  });
});
