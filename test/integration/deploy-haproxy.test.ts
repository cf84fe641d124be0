// The shipped HAProxy config (deploy/haproxy/haproxy.cfg) in front of real
// nodes: HAProxy accepts the file as shipped; run with only its addresses
// moved to loopback, it carries WebSockets to three nodes on one Redis, hides
// a draining node's 503s from new clients, takes that node out on its /ready,
// and passes the client's address on in X-Forwarded-For, which the nodes
// believe from it alone (TRUSTED_PROXIES).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import jwt from 'jsonwebtoken';
import WebSocket from 'ws';
import { eventually } from '../helpers/eventually';
import { checkHaproxyConfig, haproxyStats, loopbackHaproxyConfig, serverRow, SHIPPED_HAPROXY_CFG, startHaproxy, type StatsRow } from '../helpers/haproxy';
import { TEST_SECRET } from '../helpers/node';
import { spawnNode, type SpawnedNode } from '../helpers/process';
import { freePort, startRedis } from '../helpers/redis';
import { TestClient } from '../helpers/ws-client';

/** The shipped backend and its servers; the nodes take the server names as NODE_ID, so welcome.node names the server. */
const BACKEND = 'nodes';
const SERVERS = ['node1', 'node2', 'node3'];

const token = (sub: string) => jwt.sign({ sub, exp: Math.floor(Date.now() / 1000) + 600 }, TEST_SECRET, { algorithm: 'HS256' });

/** Writes the loopback variant of the shipped config, checks it, starts HAProxy, and waits until every server is UP. */
async function haproxyInFront(t: TestContext, serverPorts: number[]) {
  const dir = mkdtempSync(path.join(tmpdir(), 'sb-haproxy-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const layout = { frontendPort: await freePort(), statsPort: await freePort(), serverPorts };
  const file = path.join(dir, 'haproxy.cfg');
  writeFileSync(file, loopbackHaproxyConfig(readFileSync(SHIPPED_HAPROXY_CFG, 'utf8'), layout));
  const check = await checkHaproxyConfig(file);
  assert.equal(check.code, 0, check.lines.join('\n'));
  assert.deepEqual(check.lines.filter((l) => /WARNING|ALERT/.test(l)), [], 'the loopback config has nothing to warn about');
  const haproxy = startHaproxy(t, file);
  await eventually(
    async () => {
      const rows = await haproxyStats(layout.statsPort);
      for (const server of SERVERS) assert.equal(serverRow(rows, BACKEND, server).status, 'UP', server);
    },
    10_000,
    50,
  ).catch((error: unknown) => {
    throw new Error(`${String(error)}\nhaproxy output:\n${haproxy.output.join('\n')}`);
  });
  return layout;
}

test('the shipped haproxy.cfg is valid as shipped (compose hostnames need not resolve)', async () => {
  const check = await checkHaproxyConfig(SHIPPED_HAPROXY_CFG);
  assert.equal(check.code, 0, check.lines.join('\n'));
  assert.ok(check.lines.includes('Configuration file is valid'), check.lines.join('\n'));
  // The only warnings allowed: the compose service names, unknown outside compose (init-addr none keeps them).
  const warnings = check.lines.filter((l) => /WARNING|ALERT/.test(l));
  assert.deepEqual(
    warnings.filter((l) => !/could not resolve address 'node[123]'/.test(l)),
    [],
  );
});

test('HAProxy with the shipped config carries WebSockets to 3 nodes and takes a draining node out on its /ready', async (t) => {
  const redis = await startRedis(t);
  const env = { REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix, JWT_SECRET: TEST_SECRET, TRUSTED_PROXIES: '127.0.0.1' };
  // A long spread keeps the drained node alive, draining, until the test lets it go (below).
  const nodes = await Promise.all(SERVERS.map((id) => spawnNode(t, { ...env, NODE_ID: id, DRAIN_SPREAD_MS: '60000' })));
  const byName = new Map<string, SpawnedNode>(SERVERS.map((id, i) => [id, nodes[i] as SpawnedNode]));
  const lb = await haproxyInFront(
    t,
    nodes.map((n) => n.port),
  );

  // Two apps through HAProxy: welcomed, and a message from one reaches the other (on whichever nodes they landed).
  const alice = await TestClient.welcomed(lb.frontendPort, token('alice'));
  const bob = await TestClient.welcomed(lb.frontendPort, token('bob'));
  t.after(() => [alice, bob].forEach((c) => c.close()));
  const exchange = async (text: string) => {
    const ack = await alice.request({ type: 'message', to: 'bob', payload: { text } }, 'ack');
    assert.equal(ack.type, 'ack');
    assert.deepEqual((await bob.next('message', (f) => f.from === 'alice')).payload, { text });
  };
  await exchange('through haproxy');

  // The node to drain is one neither app is on. Two sockets straight to it keep its drain going:
  // the first is closed at once, the second only at the end of the spread (or when the test closes it).
  const victim = SERVERS.find((s) => s !== alice.welcome.node && s !== bob.welcome.node) as string;
  const victimNode = byName.get(victim) as SpawnedNode;
  const holders = await Promise.all([1, 2].map((i) => TestClient.welcomed(victimNode.port, token(`holder${i}`))));
  t.after(() => holders.forEach((c) => c.close()));
  victimNode.kill('SIGTERM');
  await eventually(async () => assert.equal((await fetch(`http://127.0.0.1:${victimNode.port}/ready`)).status, 503));

  // From now on the victim refuses upgrades (503) and is least loaded as HAProxy sees it (leastconn), so new
  // clients are first sent to it; every one of them must still be welcomed, by another node, while HAProxy's
  // checks catch up. Poll the stats page until the victim is DOWN.
  const landed: string[] = [];
  const deadline = Date.now() + 15_000;
  let row: StatsRow;
  for (;;) {
    const probe = await TestClient.welcomed(lb.frontendPort, token(`probe${landed.length}`));
    landed.push(String(probe.welcome.node));
    probe.close();
    row = serverRow(await haproxyStats(lb.statsPort), BACKEND, victim);
    if (row.status === 'DOWN') break;
    assert.ok(Date.now() < deadline, `HAProxy did not mark ${victim} DOWN; last row: ${JSON.stringify(row)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.deepEqual(
    landed.filter((node) => node === victim),
    [],
  );
  // They were sent to the victim first and redispatched (retry-on 503), not merely lucky.
  assert.ok(Number(row.wredis) > 0, `no redispatch away from ${victim}: ${JSON.stringify(row)}`);
  // Taken out by the HTTP check (layer 7, status 503), while the node still runs: not because it went away.
  assert.equal(row.check_status, 'L7STS');
  assert.equal(row.check_code, '503');
  assert.equal(victimNode.exitStatus, undefined);
  // Once DOWN it gets nothing new at all.
  for (let i = 0; i < 3; i++) {
    const probe = await TestClient.welcomed(lb.frontendPort, token(`after${i}`));
    assert.notEqual(probe.welcome.node, victim);
    probe.close();
  }

  // Let the drain finish: the node exits cleanly; the apps on the other nodes never noticed.
  holders.forEach((c) => c.close());
  assert.deepEqual(await victimNode.exited, { code: 0, signal: null });
  await exchange('after the drain');
});

/** Opens /ws through `port` from the local address `from`; resolves with the welcome frame or the refused upgrade's status. */
function connectFrom(port: number, from: string, sub: string, headers: Record<string, string> = {}): Promise<{ node: string; ws: WebSocket } | { status: number }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${token(sub)}`, { localAddress: from, headers });
  return new Promise((resolve, reject) => {
    ws.once('message', (data: Buffer) => resolve({ node: String((JSON.parse(data.toString()) as { node: unknown }).node), ws }));
    ws.once('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0 }));
    ws.once('error', reject);
  });
}

test("HAProxy's X-Forwarded-For is believed (TRUSTED_PROXIES) and a client's own is not", async (t) => {
  // One node behind all three server lines, one connection per client address: the limit shows which address
  // the node took. Every client connects from its own loopback address; HAProxy reaches the node from 127.0.0.1.
  const node = await spawnNode(t, { JWT_SECRET: TEST_SECRET, TRUSTED_PROXIES: '127.0.0.1', MAX_CONNECTIONS_PER_IP: '1' });
  const lb = await haproxyInFront(t, [node.port, node.port, node.port]);
  const sockets: WebSocket[] = [];
  t.after(() => sockets.forEach((ws) => ws.terminate()));
  const keep = (result: Awaited<ReturnType<typeof connectFrom>>) => {
    if ('ws' in result) sockets.push(result.ws);
    return 'ws' in result ? 'welcomed' : result.status;
  };

  // Two addresses, one connection each: both in, though the node's peer is HAProxy for both.
  assert.equal(keep(await connectFrom(lb.frontendPort, '127.0.0.2', 'x1')), 'welcomed');
  assert.equal(keep(await connectFrom(lb.frontendPort, '127.0.0.3', 'x2')), 'welcomed');
  // A second connection from 127.0.0.2 pretending, in its own X-Forwarded-For, to be someone else: still 127.0.0.2.
  assert.equal(keep(await connectFrom(lb.frontendPort, '127.0.0.2', 'x3', { 'X-Forwarded-For': '198.51.100.7' })), 429);
  // Straight to the node, the header of an untrusted peer is ignored: the peer address counts (127.0.0.4, new).
  assert.equal(keep(await connectFrom(node.port, '127.0.0.4', 'x4', { 'X-Forwarded-For': '127.0.0.2' })), 'welcomed');
});
