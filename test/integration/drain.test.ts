// SPEC §6.3, §3.8: SIGTERM/SIGINT on a real `switchboard serve` process.
// /ready turns 503 at once, upgrades are refused, every app socket is told
// `draining` and closed with 1012, the closes spread over DRAIN_SPREAD_MS,
// and the process exits 0.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import jwt from 'jsonwebtoken';
import { eventually } from '../helpers/eventually';
import { http } from '../helpers/http';
import { TEST_SECRET } from '../helpers/node';
import { spawnNode } from '../helpers/process';
import { TestClient, type Frame } from '../helpers/ws-client';

const CLIENTS = 10;
const SPREAD_MS = 1000;

const token = (sub: string, device: string) =>
  jwt.sign({ sub, device_id: device, exp: Math.floor(Date.now() / 1000) + 3600 }, TEST_SECRET, { algorithm: 'HS256' });

interface Watched {
  client: TestClient;
  /** Date.now() when the socket's close event fired. */
  closedAt?: number;
}

describe('graceful shutdown (drain)', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    test(`${signal}: not ready at once, upgrades refused, draining + 1012 spread over DRAIN_SPREAD_MS, exit 0`, async (t) => {
      const node = await spawnNode(t, { JWT_SECRET: TEST_SECRET, DRAIN_SPREAD_MS: String(SPREAD_MS), LOG_LEVEL: 'info' });
      assert.equal((await http(node.port, 'GET', '/ready')).status, 200);
      assert.match((await http(node.port, 'GET', '/metrics')).body, /^signaling_draining(?:\{[^}]*\})? 0$/m);

      const watched: Watched[] = [];
      for (let i = 0; i < CLIENTS; i++) {
        const client = await TestClient.welcomed(node.port, token(`user${i}`, `dev${i}`));
        t.after(() => client.close());
        const entry: Watched = { client };
        client.ws.on('close', () => (entry.closedAt = Date.now()));
        watched.push(entry);
      }
      const stillOpen = () => watched.filter((w) => w.client.closed === undefined).length;

      node.kill(signal);

      // /ready answers 503 "draining" while the node still holds open sockets.
      const ready = await eventually(async () => {
        const res = await http(node.port, 'GET', '/ready');
        assert.equal(res.status, 503, `/ready still ${res.status} ${res.body}`);
        return res;
      });
      assert.equal((ready.json() as { status: string }).status, 'draining');
      // The gauge dashboards and SwitchboardNoReadyNodes read turns 1 with it.
      assert.match((await http(node.port, 'GET', '/metrics')).body, /^signaling_draining(?:\{[^}]*\})? 1$/m);
      assert.ok(stillOpen() > 0, 'every client was already closed when /ready turned 503: the drain was not spread');

      const health = await http(node.port, 'GET', '/health');
      assert.equal(health.status, 503);
      assert.equal((health.json() as { status: string }).status, 'draining');

      // A new upgrade during the drain is refused with HTTP 503 (the client should pick another node).
      await assert.rejects(TestClient.connect(node.port, { token: token('late', 'late-dev') }), (error: Error & { status?: number }) => {
        assert.equal(error.status, 503, error.message);
        return true;
      });
      assert.ok(stillOpen() > 0, 'the refused upgrade was checked after the drain had ended');

      // Every client is told when it will be closed, then closed with 1012.
      const drainingFrames: Frame[] = [];
      for (const { client } of watched) {
        const frame = await client.next('draining');
        assert.deepEqual(Object.keys(frame).sort(), ['reconnect_after_ms', 'type']);
        assert.equal(typeof frame.reconnect_after_ms, 'number');
        const n = frame.reconnect_after_ms as number;
        assert.ok(Number.isInteger(n) && n >= 0 && n <= SPREAD_MS, `reconnect_after_ms ${n} outside 0..${SPREAD_MS}`);
        drainingFrames.push(frame);
        const closed = await client.waitClosed(SPREAD_MS + 5000);
        assert.equal(closed.code, 1012, `closed with ${JSON.stringify(closed)}`);
      }
      const delays = drainingFrames.map((f) => f.reconnect_after_ms as number);
      assert.ok(new Set(delays).size > 1, `every client got the same reconnect_after_ms: ${delays.join(',')}`);

      // The closes themselves are spread, not all at once (a lower bound only: timers may run late).
      const closeTimes = watched.map((w) => w.closedAt ?? Number.NaN);
      assert.ok(closeTimes.every(Number.isFinite), 'a close time was not recorded');
      const spanMs = Math.max(...closeTimes) - Math.min(...closeTimes);
      assert.ok(spanMs >= SPREAD_MS / 2, `closes spread over only ${spanMs} ms (DRAIN_SPREAD_MS ${SPREAD_MS})`);

      assert.deepEqual(await node.exited, { code: 0, signal: null });
      assert.ok(node.logs.some((l) => l.msg === 'draining'), 'no "draining" log record');
    });
  }

  test('SIGTERM with DRAIN_SPREAD_MS=0 and no clients exits 0 promptly', async (t) => {
    const node = await spawnNode(t, { JWT_SECRET: TEST_SECRET, DRAIN_SPREAD_MS: '0' });
    // Ready as a load balancer would see it: an answered request means start-up has finished.
    assert.equal((await http(node.port, 'GET', '/ready')).status, 200);
    node.kill('SIGTERM');
    // "Promptly": well inside the default SHUTDOWN_TIMEOUT_MS (30 s), since there is nothing to wait for.
    await eventually(() => assert.notEqual(node.exitStatus, undefined, 'still running 10 s after SIGTERM'), 10_000);
    assert.deepEqual(await node.exited, { code: 0, signal: null }, `stderr:\n${node.stderr.join('\n')}`);
  });

  // Once a node has said it is listening, an orchestrator may stop it at any
  // moment; the signal must not take Node's default action (death by signal,
  // no drain, presence left behind). The window is short, so several nodes
  // are started and signalled the instant they log "switchboard listening";
  // a correct server passes every time.
  test('a SIGTERM the instant the node logs "switchboard listening" still exits 0', async (t) => {
    const results: string[] = [];
    for (let batch = 0; batch < 4; batch++) {
      const exits = await Promise.all(
        Array.from({ length: 5 }, async () => {
          const node = await spawnNode(t, { JWT_SECRET: TEST_SECRET, DRAIN_SPREAD_MS: '0' });
          node.kill('SIGTERM');
          return node.exited;
        }),
      );
      results.push(...exits.map((e) => (e.signal === null ? `code ${e.code}` : `signal ${e.signal}`)));
    }
    const bad = results.filter((r) => r !== 'code 0');
    assert.equal(bad.length, 0, `${bad.length} of ${results.length} nodes did not exit 0: ${bad.join(', ')}`);
  });
});
