// The two ways a tunnel suite runs: everything on one node, and the sidecar
// on node A with the public client on node B over a real Redis (the public
// client must not be able to tell them apart).
import type { TestContext } from 'node:test';
import { startTestNode, type TestNode } from './node';
import { startRedis } from './redis';

/** Where sidecars connect (`node`) and where the public client sends its requests (`pub`). */
export interface TunnelNodes {
  node: TestNode;
  pub: TestNode;
}

export const TUNNEL_TOPOLOGIES: [name: string, start: (t: TestContext, env?: Record<string, string>) => Promise<TunnelNodes>][] = [
  [
    'one node',
    async (t, env = {}) => {
      const node = await startTestNode(t, env);
      return { node, pub: node };
    },
  ],
  [
    'sidecar on node A, public client on node B',
    async (t, env = {}) => {
      const redis = await startRedis(t);
      const shared = { REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix, ...env };
      return { node: await startTestNode(t, shared), pub: await startTestNode(t, shared) };
    },
  ],
];
