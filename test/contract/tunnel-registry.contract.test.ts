// One contract for every TunnelRegistry implementation, run with two "nodes"
// on one backend: MemoryRegistry nodes sharing a MemoryRouteTable, and
// RedisRegistry nodes (each with its own connection and lease) on one real
// redis-server, and on a Redis Cluster. What only Redis has to do (leases, outages, races held open
// with a proxy) is in test/integration/redis-registry.test.ts.
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { PATH_ID_PATTERN } from '../../src/protocol/names';
import { MemoryRegistry, MemoryRouteTable } from '../../src/tunnel/memory-registry';
import type { TunnelRegistry, TunnelRoute } from '../../src/tunnel/registry';
import { startLeaseNode } from '../helpers/lease-node';
import { deployRedisCluster, deploySingleRedis, type RedisDeployment } from '../helpers/redis-topologies';

export interface RegistryFactory {
  name: string;
  /** Two started registries on one backend, nodes "n1" and "n2", closed in teardown. */
  create(t: TestContext): Promise<[TunnelRegistry, TunnelRegistry]>;
}

const memoryRegistryFactory: RegistryFactory = {
  name: 'memory',
  create(t) {
    const table = new MemoryRouteTable();
    const nodes = [new MemoryRegistry('n1', table), new MemoryRegistry('n2', table)] as const;
    t.after(() => Promise.all(nodes.map((node) => node.close())));
    return Promise.resolve([...nodes]);
  },
};

/** Two lease nodes on the Redis `deploy` starts. */
function redisFactory(name: string, deploy: (t: TestContext) => Promise<RedisDeployment>): RegistryFactory {
  return {
    name,
    async create(t) {
      const { at, prefix } = await deploy(t);
      const n1 = await startLeaseNode(t, at, prefix, 'n1');
      const n2 = await startLeaseNode(t, at, prefix, 'n2');
      return [n1.registry, n2.registry];
    },
  };
}

const redisRegistryFactory = redisFactory('redis', deploySingleRedis);

/** Each route hash and lease index lies in a slot of its own: every command must touch one. */
const redisClusterRegistryFactory = redisFactory('Redis Cluster', deployRedisCluster);

/** Routes in a stable order (implementations answer in any). */
async function routesOf(registry: TunnelRegistry, pathId: string): Promise<TunnelRoute[]> {
  return (await registry.routes(pathId)).sort((a, b) => `${a.node}/${a.sidecar}`.localeCompare(`${b.node}/${b.sidecar}`));
}

const n1 = (sidecar: string): TunnelRoute => ({ node: 'n1', sidecar });
const n2 = (sidecar: string): TunnelRoute => ({ node: 'n2', sidecar });

export function registryContract(factory: RegistryFactory): void {
  describe(`TunnelRegistry contract: ${factory.name}`, () => {
    test('every node finds every sidecar added for a path, until it is removed', async (t) => {
      const [a, b] = await factory.create(t);
      assert.deepEqual(await a.routes('p'), []);
      await a.add('p', 'a1');
      await b.add('p', 'b1');
      await b.add('p', 'b2');
      await a.add('q', 'a2');
      for (const registry of [a, b]) {
        assert.deepEqual(await routesOf(registry, 'p'), [n1('a1'), n2('b1'), n2('b2')]);
        assert.deepEqual(await routesOf(registry, 'q'), [n1('a2')]);
      }

      await b.remove('p', 'b1');
      assert.deepEqual(await routesOf(a, 'p'), [n1('a1'), n2('b2')]);
      await b.remove('p', 'b1');
      await b.remove('p', 'never-added');
      await a.remove('p', 'b2');
      assert.deepEqual(await routesOf(b, 'p'), [n1('a1'), n2('b2')], "a node withdrew another node's route");
      await a.remove('p', 'a1');
      await b.remove('p', 'b2');
      await a.remove('q', 'a2');
      for (const registry of [a, b]) for (const path of ['p', 'q']) assert.deepEqual(await registry.routes(path), []);
    });

    test('writes for one sidecar apply in call order: a remove made while its add is in flight leaves no route', async (t) => {
      const [a, b] = await factory.create(t);
      // Neither is awaited before the next call.
      const added = a.add('p', 'gone');
      const removed = a.remove('p', 'gone');
      await Promise.all([added, removed]);
      assert.deepEqual(await b.routes('p'), []);

      // The other way round, the route stays.
      await Promise.all([a.remove('p', 'back'), a.add('p', 'back')]);
      assert.deepEqual(await b.routes('p'), [n1('back')]);
    });

    test('every path id PATH_ID_PATTERN allows is a name of its own', async (t) => {
      const [a, b] = await factory.create(t);
      const ids = ['.', '..', '-', '_', 'a', 'A', 'a.b-c_D', '123e4567-e89b-12d3-a456-426614174000', 'Z'.repeat(128)];
      for (const id of ids) assert.match(id, PATH_ID_PATTERN);
      for (const [i, id] of ids.entries()) await a.add(id, `s${i}`);
      for (const [i, id] of ids.entries()) assert.deepEqual(await b.routes(id), [n1(`s${i}`)], id);
      for (const [i, id] of ids.entries()) await a.remove(id, `s${i}`);
      for (const id of ids) assert.deepEqual(await b.routes(id), [], id);
    });

    test("close withdraws the node's routes and no other's; an add after close rejects", async (t) => {
      const [a, b] = await factory.create(t);
      await a.add('p', 'a1');
      await a.add('q', 'a2');
      await b.add('p', 'b1');
      await a.close();
      assert.deepEqual(await b.routes('p'), [n2('b1')]);
      assert.deepEqual(await b.routes('q'), []);
      await assert.rejects(a.add('p', 'late'));
      assert.deepEqual(await b.routes('p'), [n2('b1')]);
    });
  });
}

registryContract(memoryRegistryFactory);
registryContract(redisRegistryFactory);
registryContract(redisClusterRegistryFactory);
