// SPEC §5: "a 100 MiB response relayed across nodes to a slow client grows no
// node's memory by more than a small multiple of the chunk size". Two real
// node processes on one Redis, Switchboard's own sidecar on node A, a public
// client on node B that reads slowly (and one that uploads 100 MiB): each
// node's RSS is sampled from /proc, and the bytes are checked by sha256.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { test, type TestContext } from 'node:test';
import jwt from 'jsonwebtoken';
import { pattern, startBackend } from '../helpers/backend';
import { TEST_SECRET } from '../helpers/node';
import { startOwnSidecar } from '../helpers/own-sidecar';
import { spawnNode, type SpawnedNode } from '../helpers/process';
import { startRedis } from '../helpers/redis';

const PATH = 'big-bodies';
const SIZE = 100 * 1024 * 1024;
/** The bound the issue sets: a node may grow by less than this while relaying 100 MiB. */
const RSS_BOUND = 64 * 1024 * 1024;
/** The slow reader's pace: about 4 s for 100 MiB (the relay could go several times faster). */
const READ_BYTES_PER_S = 25 * 1024 * 1024;

/** A process's resident set from /proc; 0 once it has exited (the transfer then fails and says why). */
const rssOf = (pid: number) => {
  try {
    return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
};

/** Samples the processes' RSS every 50 ms; `stop` gives each one's peak. */
function sampleRss(pids: number[]): { stop: () => number[] } {
  const peaks = pids.map(rssOf);
  const timer = setInterval(() => pids.forEach((pid, i) => (peaks[i] = Math.max(peaks[i] ?? 0, rssOf(pid)))), 50);
  return {
    stop: () => {
      clearInterval(timer);
      return peaks;
    },
  };
}

const expectedSha = (() => {
  let memo: string | undefined;
  return () => {
    if (memo !== undefined) return memo;
    const hash = createHash('sha256');
    for (let at = 0; at < SIZE; at += 1024 * 1024) hash.update(pattern(Math.min(1024 * 1024, SIZE - at), at));
    return (memo = hash.digest('hex'));
  };
})();

async function cluster(t: TestContext) {
  const redis = await startRedis(t);
  // The nodes run as deployments run them (README, Dockerfile): with a young generation of 8 MiB.
  const env = { REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix, JWT_SECRET: TEST_SECRET, MAX_REQUEST_BYTES: String(2 * SIZE), NODE_OPTIONS: '--max-semi-space-size=8' };
  const a = await spawnNode(t, { ...env, NODE_ID: 'sidecar-node' });
  const b = await spawnNode(t, { ...env, NODE_ID: 'public-node' });
  const backend = await startBackend(t);
  const now = Math.floor(Date.now() / 1000);
  const token = jwt.sign({ sub: 'tunnel', jti: 'j', path_id: PATH, roles: ['tunnel'], iat: now, exp: now + 3600 }, TEST_SECRET);
  await startOwnSidecar(t, a.port, token, backend.origin);

  // Warm both nodes up (JIT, buffers) before the baseline RSS is read.
  for (let i = 0; i < 3; i++) await download(b.port, 4 * 1024 * 1024, Infinity);
  return { a, b, explain: (error: unknown) => explain(error, { A: a, B: b }) };
}

/** A transfer that failed, with what each node that exited meanwhile wrote last. */
function explain(error: unknown, nodes: Record<string, SpawnedNode>): Error {
  const exits = Object.entries(nodes)
    .filter(([, node]) => node.exitStatus !== undefined)
    .map(([name, node]) => `node ${name} exited ${JSON.stringify(node.exitStatus)}:\n${[...node.stderr, ...node.lines].slice(-30).join('\n')}`);
  return new Error([String(error), ...exits].join('\n'));
}

/** GETs n bytes from the tunnel through `port`, reading at `bytesPerS`; the sha256 and byte count. */
function download(port: number, n: number, bytesPerS: number): Promise<{ status: number; bytes: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    const began = performance.now();
    const req = httpRequest({ host: '127.0.0.1', port, path: `/call/${PATH}/stream?n=${n}`, agent: false }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
        const ahead = bytes / bytesPerS - (performance.now() - began) / 1000;
        if (ahead > 0.01) {
          res.pause();
          setTimeout(() => res.resume(), ahead * 1000);
        }
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, sha256: hash.digest('hex') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** POSTs the pattern's first n bytes through `port`, written as the socket takes them; the back end's count and sha256. */
function upload(port: number, n: number): Promise<{ bytes: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: `/call/${PATH}/upload`, agent: false, headers: { 'content-length': String(n) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString()) as { bytes: number; sha256: string }));
    });
    req.on('error', reject);
    let sent = 0;
    const more = (): void => {
      while (sent < n) {
        const size = Math.min(256 * 1024, n - sent);
        const ok = req.write(pattern(size, sent));
        sent += size;
        if (!ok) return void req.once('drain', more);
      }
      req.end();
    };
    more();
  });
}

test('a 100 MiB response to a slow reader across two nodes: the bytes match and neither node grows by 64 MiB', { timeout: 60_000 }, async (t) => {
  const { a, b, explain } = await cluster(t);
  const before = [rssOf(a.pid), rssOf(b.pid)];
  const sampler = sampleRss([a.pid, b.pid]);
  const began = performance.now();
  const result = await download(b.port, SIZE, READ_BYTES_PER_S).catch((error: unknown) => Promise.reject(explain(error)));
  const peaks = sampler.stop();
  const growth = peaks.map((peak, i) => peak - (before[i] ?? 0));
  t.diagnostic(`100 MiB in ${Math.round(performance.now() - began)} ms; RSS growth: sidecar's node ${(growth[0]! / 2 ** 20).toFixed(1)} MiB, public node ${(growth[1]! / 2 ** 20).toFixed(1)} MiB`);
  assert.deepEqual(result, { status: 200, bytes: SIZE, sha256: expectedSha() });
  for (const [i, grown] of growth.entries()) assert.ok(grown < RSS_BOUND, `node ${i === 0 ? 'A' : 'B'} grew by ${grown} bytes`);
});

test('a 100 MiB upload across two nodes: the back end gets every byte and neither node grows by 64 MiB', { timeout: 60_000 }, async (t) => {
  const { a, b, explain } = await cluster(t);
  const before = [rssOf(a.pid), rssOf(b.pid)];
  const sampler = sampleRss([a.pid, b.pid]);
  const began = performance.now();
  const result = await upload(b.port, SIZE).catch((error: unknown) => Promise.reject(explain(error)));
  const peaks = sampler.stop();
  const growth = peaks.map((peak, i) => peak - (before[i] ?? 0));
  t.diagnostic(`100 MiB up in ${Math.round(performance.now() - began)} ms; RSS growth: sidecar's node ${(growth[0]! / 2 ** 20).toFixed(1)} MiB, public node ${(growth[1]! / 2 ** 20).toFixed(1)} MiB`);
  assert.deepEqual(result, { bytes: SIZE, sha256: expectedSha() });
  for (const [i, grown] of growth.entries()) assert.ok(grown < RSS_BOUND, `node ${i === 0 ? 'A' : 'B'} grew by ${grown} bytes`);
});
