// Two nodes that find their Redis through Sentinel (REDIS_SENTINELS +
// REDIS_SENTINEL_NAME): cross-node signaling with acks, rooms and presence.
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { checkDirectSignaling, checkHealthyOnRedis, checkRooms } from '../helpers/cluster-checks';
import { startTestNode, type TestNode } from '../helpers/node';
import { redisCliLines, startRedisSentinel, type RedisSentinelDeployment } from '../helpers/redis-topologies';

async function startSentinelNodes(t: TestContext, env: Record<string, string> = {}): Promise<{ redis: RedisSentinelDeployment; nodes: [TestNode, TestNode] }> {
  // Hooks run in registration order: the nodes must leave Redis before its processes are killed.
  const nodes: TestNode[] = [];
  t.after(() => Promise.all(nodes.map((n) => n.close())));
  const redis = await startRedisSentinel(t, 2);
  for (let i = 0; i < 2; i++)
    nodes.push(await startTestNode(undefined, { REDIS_SENTINELS: redis.sentinels, REDIS_SENTINEL_NAME: redis.name, REDIS_PREFIX: redis.prefix, ...env }));
  return { redis, nodes: nodes as [TestNode, TestNode] };
}

describe('Redis Sentinel: signaling and rooms across nodes', () => {
  test('direct messages cross nodes with acks, device targeting, peer_offline and order over 1,000 messages; /health is up', async (t) => {
    const { redis, nodes } = await startSentinelNodes(t, { RATE_LIMIT_POINTS: '100000' });
    await checkHealthyOnRedis(nodes);
    await checkDirectSignaling(t, nodes);
    // The nodes really went through Sentinel to the master it names (one server, plain pub/sub).
    const channels = await redisCliLines(redis.masterPort, 'pubsub', 'channels', `${redis.prefix}*`);
    assert.ok(channels.includes(`${redis.prefix}{u:bob}u:bob`), JSON.stringify(channels));
  });

  test('rooms: members, member_joined/left and one copy of each message per member', async (t) => {
    await checkRooms(t, (await startSentinelNodes(t)).nodes);
  });
});
