// Several real nodes on one real redis-server, in this process.
import type { TestContext } from 'node:test';
import { startTestNode, type TestNode } from './node';
import { startRedis, type RedisServer } from './redis';

export interface TestCluster {
  redis: RedisServer;
  nodes: TestNode[];
}

export async function startCluster(t: TestContext, count: number, env: Record<string, string> = {}): Promise<TestCluster> {
  const redis = await startRedis(t);
  const nodes: TestNode[] = [];
  for (let i = 0; i < count; i++) nodes.push(await startTestNode(t, { REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix, ...env }));
  return { redis, nodes };
}
