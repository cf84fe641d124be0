// The demo page, which talks to Switchboard through the client SDK, in
// headless Chromium across two real node processes on one real redis-server:
// page A on node 1, page B on node 2. The call's offer, answer and candidates
// cross from one node to the other through Redis, the WebRTC data channel
// opens and carries chat both ways; then node 1 is drained (SIGTERM) and page
// A, given both nodes' URLs, moves to node 2 by itself and sees B online
// again, while the peer-to-peer channel stays up. Every process (nodes,
// redis-server) is killed by PID in teardown if still running.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import jwt from 'jsonwebtoken';
import type { Browser } from 'playwright-core';
import { BROWSER_TEST_TIMEOUT_MS, callAndOpen, contains, launchBrowser, openTab, shows, type Tab } from '../helpers/browser';
import { TEST_SECRET } from '../helpers/node';
import { spawnNode, type SpawnedNode } from '../helpers/process';
import { startRedis } from '../helpers/redis';

const token = (sub: string, device: string) => jwt.sign({ sub, device_id: device, exp: Math.floor(Date.now() / 1000) + 3600 }, TEST_SECRET, { algorithm: 'HS256' });
const wsUrl = (node: SpawnedNode) => `ws://127.0.0.1:${node.port}/ws`;

/** The demo page served by `node`, for `user`, calling `peer`, on the given signaling servers (the page's default: its own node). */
function demoUrl(node: SpawnedNode, user: string, device: string, peer: string, servers?: SpawnedNode[]): string {
  const query = new URLSearchParams({ token: token(user, device), peer });
  if (servers !== undefined) query.set('servers', servers.map(wsUrl).join(','));
  return `http://127.0.0.1:${node.port}/?${query.toString()}`;
}

async function connect(tab: Tab, who: string): Promise<void> {
  await tab.page.click('#connect');
  await shows(tab.page, '#status', 'connected');
  await contains(tab.page, '#me', who);
}

async function chat(from: Tab, to: Tab, sender: string, text: string): Promise<void> {
  await from.page.fill('#chat-input', text);
  await from.page.click('#chat-send');
  await contains(to.page, '#chat-log', `${sender}: ${text}`);
}

let browser: Browser;
before(async () => {
  browser = await launchBrowser();
});
after(() => browser?.close());

test('two pages on two nodes: a data channel signaled across nodes; a drained node hands page A to the other node', { timeout: BROWSER_TEST_TIMEOUT_MS }, async (t) => {
  const redis = await startRedis(t);
  const env = { REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix, JWT_SECRET: TEST_SECRET, DEMO: 'true', DRAIN_SPREAD_MS: '300' };
  const [node1, node2] = await Promise.all([spawnNode(t, { ...env, NODE_ID: 'sdk-node-1' }), spawnNode(t, { ...env, NODE_ID: 'sdk-node-2' })]);

  // The page loads the SDK bundle from the node (built by `npm run build`, no build step at run time).
  const bundle = await fetch(`http://127.0.0.1:${node1.port}/switchboard-client.js`);
  assert.equal(bundle.status, 200);
  assert.match(bundle.headers.get('content-type') ?? '', /^text\/javascript/);
  assert.match(await bundle.text(), /SwitchboardClient/);

  const b = await openTab(t, browser, demoUrl(node2, 'bob', 'bob-laptop', 'alice'), 'bob');
  await connect(b, 'bob / bob-laptop @ sdk-node-2');
  const a = await openTab(t, browser, demoUrl(node1, 'alice', 'alice-laptop', 'bob', [node1, node2]), 'alice');
  await connect(a, 'alice / alice-laptop @ sdk-node-1');
  await shows(a.page, '#peer-presence', 'online');
  await shows(b.page, '#peer-presence', 'online');

  // The call: node 1 → Redis → node 2 and back.
  await callAndOpen(a, b, 'alice/alice-laptop', 'bob/bob-laptop');
  await chat(a, b, 'alice', 'hello across nodes');
  await chat(b, a, 'bob', 'hi back');

  // Drain node 1: it tells page A, closes it with 1012 and exits; the SDK takes page A to node 2,
  // resuming its session there (SPEC §3.9): same rooms and watches, nothing lost.
  node1.kill('SIGTERM');
  await contains(a.page, '#log', 'node draining');
  await contains(a.page, '#log', 'socket closed: 1012 draining');
  await shows(a.page, '#me', 'alice / alice-laptop @ sdk-node-2 (resumed)');
  await shows(a.page, '#status', 'connected');
  await shows(a.page, '#peer-presence', 'online');
  await contains(a.page, '#log', 'welcome: user alice, device alice-laptop, node sdk-node-2');

  // The data channel is peer-to-peer: it never noticed. Signaling works on the new node: the bye arrives.
  assert.equal(await a.page.textContent('#channel-state'), 'open');
  await chat(a, b, 'alice', 'after the move');
  await chat(b, a, 'bob', 'still here');
  await a.page.click('#hangup');
  await contains(b.page, '#log', 'bye from alice');
  await shows(b.page, '#channel-state', 'closed');

  assert.deepEqual(await node1.exited, { code: 0, signal: null }, 'node 1 drained and exited cleanly');
  assert.deepEqual([...a.errors, ...b.errors], [], 'no page errors');
  assert.equal(node2.exitStatus, undefined, 'node 2 still runs');
});
