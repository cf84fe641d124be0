// Issue 12: order per (sender, recipient device) holds across addressing
// modes (SPEC §3.2). A sender that mixes "to the user" and "to one device" in
// one burst publishes on u:<user> and d:<user>/<device>, two bus channels that
// reach the same device; each device must get the messages in the order they
// were sent, whichever channel carried each.
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { startCluster } from '../helpers/cluster';
import { eventually } from '../helpers/eventually';
import { startTestNode, type TestNode } from '../helpers/node';
import { startRedisCluster } from '../helpers/redis-topologies';
import { TestClient, type Frame } from '../helpers/ws-client';

const ENV = { RATE_LIMIT_POINTS: '100000' };
/** Messages per burst: more than the 256 the Redis bus gathers before it flushes early. */
const BURST = 600;
const TYPES = ['offer', 'candidate', 'candidate', 'answer', 'message'] as const;
/** Whom message i is addressed to: runs of one mode and switches between them, both devices named. */
const ADDRESSING = ['user', 'd1', 'user', 'd1', 'd1', 'user', 'user', 'd2', 'd1', 'user', 'd2', 'd2'] as const;
type Device = 'd1' | 'd2';

/**
 * Sends BURST messages (payloads `from`, `from + 1`, …) from `alice` to bob in one synchronous
 * loop: one WebSocket write burst, which the node reads and handles in one event-loop turn or a
 * few. Waits for every reply: an ack, or peer_offline for a device in `offline`. Returns the
 * payloads each of bob's devices should receive, in order.
 */
async function burst(alice: TestClient, from: number, offline: readonly Device[]): Promise<Record<Device, number[]>> {
  const expected: Record<Device, number[]> = { d1: [], d2: [] };
  const refused: string[] = [];
  for (let i = 0; i < BURST; i++) {
    const mode = ADDRESSING[i % ADDRESSING.length] ?? 'user';
    const payload = from + i;
    const id = `m${payload}`;
    alice.send({ type: TYPES[i % TYPES.length], to: 'bob', ...(mode === 'user' ? {} : { device: mode }), id, payload });
    for (const device of ['d1', 'd2'] as const) if (mode === 'user' || mode === device) expected[device].push(payload);
    if (mode !== 'user' && offline.includes(mode)) refused.push(id);
  }
  const ours = (f: Frame) => typeof f.id === 'string' && Number(f.id.slice(1)) >= from;
  await eventually(() => assert.equal(alice.frames.filter(ours).length, BURST), 20_000);
  const errors = alice.all('error').filter(ours);
  assert.deepEqual(errors.map((f) => f.id), refused);
  assert.ok(errors.every((f) => f.code === 'peer_offline'), JSON.stringify(errors.slice(0, 3)));
  return expected;
}

/** The payloads of the signals `client` received, in arrival order, from `from` on. */
function received(client: TestClient, from: number): number[] {
  const signals = client.frames.filter((f) => (TYPES as readonly string[]).includes(f.type));
  return signals.map((f) => Number(f.payload)).filter((p) => p >= from);
}

async function receivesInOrder(client: TestClient, from: number, expected: readonly number[]): Promise<void> {
  // Waits for the count only: the order is asserted once, on everything that arrived.
  await eventually(() => assert.equal(received(client, from).length, expected.length), 20_000);
  assert.deepEqual(received(client, from), expected);
}

/**
 * Alice on the first node, bob's d1 on the second. First bob has only d1 (messages to d2 come back
 * peer_offline); then bob's d2 joins on alice's node, which then subscribes bob's channels too and
 * delivers to d2 itself.
 */
async function checkMixedAddressingOrder(t: TestContext, [n1, n2]: readonly [TestNode, TestNode]): Promise<void> {
  const alice = await TestClient.welcomed(n1.port, n1.token({ sub: 'alice', device_id: 'a1' }));
  const d1 = await TestClient.welcomed(n2.port, n2.token({ sub: 'bob', device_id: 'd1' }));
  t.after(() => [alice, d1].forEach((c) => c.close()));
  assert.notEqual(alice.welcome.node, d1.welcome.node);

  const alone = await burst(alice, 0, ['d2']);
  await receivesInOrder(d1, 0, alone.d1);

  const d2 = await TestClient.welcomed(n1.port, n1.token({ sub: 'bob', device_id: 'd2' }));
  t.after(() => d2.close());
  const both = await burst(alice, BURST, []);
  await receivesInOrder(d1, BURST, both.d1);
  await receivesInOrder(d2, BURST, both.d2);
}

describe('order per (sender, recipient device) across addressing modes (issue 12)', () => {
  test('two nodes on one Redis', async (t) => {
    const { nodes } = await startCluster(t, 2, ENV);
    await checkMixedAddressingOrder(t, nodes as [TestNode, TestNode]);
  });

  test('two nodes on a Redis Cluster (sharded pub/sub: one SPUBLISH per batch)', async (t) => {
    // Hooks run in registration order: the nodes must leave Redis before its processes are killed.
    const nodes: TestNode[] = [];
    t.after(() => Promise.all(nodes.map((n) => n.close())));
    const redis = await startRedisCluster(t);
    for (let i = 0; i < 2; i++) nodes.push(await startTestNode(undefined, { REDIS_CLUSTER_NODES: redis.nodes, REDIS_PREFIX: redis.prefix, ...ENV }));
    await checkMixedAddressingOrder(t, nodes as [TestNode, TestNode]);
  });
});
