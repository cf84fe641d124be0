// A rolling deploy in a cluster: a draining node's clients reconnect to
// another node, watchers see no offline/online storm, and the drained node
// leaves nothing behind in Redis.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventually } from '../helpers/eventually';
import { startTestNode } from '../helpers/node';
import { spawnNode } from '../helpers/process';
import { startRedis } from '../helpers/redis';
import { inspector, leaseNodes, scanKeys } from '../helpers/redis-state';
import { TestClient } from '../helpers/ws-client';
import { TEST_SECRET } from '../helpers/node';

test('drain in a cluster: clients move to another node without presence flaps, and no ghost state remains', async (t) => {
  const redis = await startRedis(t);
  const env = { REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix, JWT_SECRET: TEST_SECRET };
  const draining = await spawnNode(t, { ...env, NODE_ID: 'leaving-node', DRAIN_SPREAD_MS: '600' });
  const staying = await startTestNode(t, env);
  const watcher = await TestClient.welcomed(staying.port, staying.token({ sub: 'watcher' }));
  t.after(() => watcher.close());
  const users = Array.from({ length: 8 }, (_, i) => `mover${i}`);
  assert.ok(Object.values((await watcher.request({ type: 'watch', users }, 'watching')).users as object).every((s) => s === 'offline'));

  // Half the clients reconnect as soon as they are told to drain, half only once their socket is closed (1012).
  const moved: TestClient[] = [];
  const clients = await Promise.all(users.map((user) => TestClient.welcomed(draining.port, staying.token({ sub: user, device_id: 'phone' }))));
  t.after(() => [...clients, ...moved].forEach((c) => c.close()));
  await eventually(() => assert.equal(watcher.all('presence').filter((f) => f.status === 'online').length, users.length));
  const reconnect = (i: number) => void TestClient.welcomed(staying.port, staying.token({ sub: users[i], device_id: 'phone' })).then((c) => moved.push(c));
  for (const [i, client] of clients.entries()) {
    if (i % 2 === 0) client.ws.on('message', (data: Buffer) => (JSON.parse(data.toString()) as { type: string }).type === 'draining' && reconnect(i));
    else client.ws.on('close', (code) => code === 1012 && reconnect(i));
  }

  draining.kill('SIGTERM');
  assert.deepEqual(await draining.exited, { code: 0, signal: null });
  await eventually(() => assert.equal(moved.length, users.length));
  for (const client of clients) assert.ok([1012, 4009].includes((await client.waitClosed()).code));

  // Everyone is online on the staying node, and watchers saw no offline in between.
  const states = await watcher.request({ type: 'presence', users }, 'presence');
  assert.ok(Object.values(states.users as object).every((s) => s === 'online'));
  assert.deepEqual(watcher.all('presence').filter((f) => f.status === 'offline'), []);
  // …and no second "online" either: a user who reconnected after their old socket's goodbye is
  // announced online by the new node, but the watcher was never told otherwise (issue 12).
  await watcher.request({ type: 'ping' }, 'pong');
  for (const user of users) assert.deepEqual(watcher.all('presence').filter((f) => f.user === user).map((f) => f.status), ['online'], user);

  // Nothing of the drained node is left in Redis.
  const inspect = inspector(t, redis.url);
  const keys = await scanKeys(inspect, redis.prefix);
  assert.deepEqual(keys.filter((k) => k.includes('leaving-node')), []);
  assert.ok(!(await leaseNodes(inspect, redis.prefix)).includes('leaving-node'));
});
