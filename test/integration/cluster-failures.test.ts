// Issue 3 "Horizontal scale": what the cluster does when things break.
//
// - kill -9 of a node: its users and room memberships are reaped by the
//   survivors within PRESENCE_TTL_MS (node leases, SPEC §3.4), watchers and
//   room members are told.
// - SIGTERM of a node: it leaves Redis clean (SPEC §6.3), nothing of it stays.
// - Redis outage: /ready and /health go 503 within seconds (SPEC §6.1),
//   messages that cannot be routed get `unavailable` (SPEC §3.6), clients stay
//   connected; when Redis comes back (empty), subscriptions, leases,
//   presence and rooms are restored and cross-node traffic resumes without a
//   restart.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startCluster } from '../helpers/cluster';
import { eventually } from '../helpers/eventually';
import { http } from '../helpers/http';
import { startTestNode, TEST_SECRET, type TestNode } from '../helpers/node';
import { spawnNode } from '../helpers/process';
import { startRedis } from '../helpers/redis';
import { inspector, leaseNodes, scanKeys } from '../helpers/redis-state';
import { TestClient, type Frame } from '../helpers/ws-client';

const PRESENCE_TTL_MS = 3000;
/** How long a poll may wait beyond the spec's bound before the test gives up (loaded CI machines); durations are reported, not asserted. */
const MARGIN_MS = 5000;

interface Stamped {
  at: number;
  frame: Frame;
}

/** Records when each frame arrived (TestClient keeps frames but not their arrival times). */
function stamp(client: TestClient): Stamped[] {
  const out: Stamped[] = [];
  client.ws.on('message', (data, isBinary) => {
    if (!isBinary) out.push({ at: Date.now(), frame: JSON.parse((data as Buffer).toString('utf8')) as Frame });
  });
  return out;
}

function adminHeaders(node: TestNode): Record<string, string> {
  return { authorization: `Bearer ${node.token({ sub: 'ops', roles: ['admin'] })}` };
}

async function presenceOf(node: TestNode, users: string[]): Promise<Record<string, string>> {
  const res = await http(node.port, 'GET', `/v1/presence?users=${users.join(',')}`, { headers: adminHeaders(node) });
  assert.equal(res.status, 200, res.body);
  return (res.json() as { users: Record<string, string> }).users;
}

const memberUsers = (frame: Frame) => (frame.members as { user: string; device: string }[]).map((m) => `${m.user}/${m.device}`).sort();

describe('cluster failures: dead nodes, clean exits, Redis outages', () => {
  test('kill -9 of a node: survivors report its users offline and its memberships gone within PRESENCE_TTL_MS', async (t) => {
    const redis = await startRedis(t);
    const env = { REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix, PRESENCE_TTL_MS: String(PRESENCE_TTL_MS) };
    const doomed = await spawnNode(t, { ...env, JWT_SECRET: TEST_SECRET, NODE_ID: 'doomed-node' });
    const survivor = await startTestNode(t, env);

    const ghost = await TestClient.welcomed(doomed.port, survivor.token({ sub: 'ghost', device_id: 'g1' }));
    t.after(() => ghost.close());
    assert.equal(ghost.welcome.node, 'doomed-node');
    assert.equal((await ghost.request({ type: 'subscribe', room: 'r' }, 'subscribed')).type, 'subscribed');

    const watcher = await TestClient.welcomed(survivor.port, survivor.token({ sub: 'watcher', device_id: 'w1' }));
    t.after(() => watcher.close());
    const stamped = stamp(watcher);
    assert.deepEqual((await watcher.request({ type: 'watch', users: ['ghost'] }, 'watching')).users, { ghost: 'online' });
    const joined = await watcher.request({ type: 'subscribe', room: 'r' }, 'subscribed');
    assert.deepEqual(memberUsers(joined), ['ghost/g1', 'watcher/w1']);
    assert.deepEqual(await presenceOf(survivor, ['ghost']), { ghost: 'online' });

    const killedAt = Date.now();
    doomed.kill('SIGKILL');
    assert.deepEqual(await doomed.exited, { code: null, signal: 'SIGKILL' });

    const offline = await watcher.next('presence', (f) => f.user === 'ghost', PRESENCE_TTL_MS + MARGIN_MS);
    assert.deepEqual(offline, { type: 'presence', user: 'ghost', status: 'offline' });
    const left = await watcher.next('member_left', (f) => f.user === 'ghost', 5000);
    assert.deepEqual(left, { type: 'member_left', room: 'r', user: 'ghost', device: 'g1' });

    const arrival = (match: (f: Frame) => boolean) => stamped.find((s) => s.at >= killedAt && match(s.frame))?.at ?? Number.NaN;
    const offlineAfter = arrival((f) => f.type === 'presence' && f.user === 'ghost' && f.status === 'offline') - killedAt;
    const leftAfter = arrival((f) => f.type === 'member_left' && f.user === 'ghost') - killedAt;
    t.diagnostic(`after kill -9: presence offline in ${offlineAfter} ms, member_left in ${leftAfter} ms (PRESENCE_TTL_MS=${PRESENCE_TTL_MS})`);
    // Announced once, not once per survivor pass.
    assert.equal(watcher.all('presence').filter((f) => f.user === 'ghost' && f.status === 'offline').length, 1);

    assert.deepEqual(await presenceOf(survivor, ['ghost', 'watcher']), { ghost: 'offline', watcher: 'online' });
    assert.deepEqual((await watcher.request({ type: 'presence', users: ['ghost'] }, 'presence')).users, { ghost: 'offline' });
    // The dead node's session was released by the reaper: resumable (SPEC §3.9), so a direct
    // message to its user is kept for it (and comes back with it at the end of this test).
    const kept = await watcher.request({ type: 'offer', to: 'ghost', payload: 'hello?' });
    assert.deepEqual([kept.type, kept.queued], ['ack', true]);
    // Its rooms were saved as it joined them (nobody sent it away with its state): room traffic is kept too.
    await watcher.request({ type: 'publish', room: 'r', payload: 'while dead' }, 'ack');

    // A newcomer to the room sees only live members.
    const late = await TestClient.welcomed(survivor.port, survivor.token({ sub: 'late', device_id: 'l1' }));
    t.after(() => late.close());
    assert.deepEqual(memberUsers(await late.request({ type: 'subscribe', room: 'r' }, 'subscribed')), ['late/l1', 'watcher/w1']);

    // Nothing of the dead node is left in Redis.
    const inspect = inspector(t, redis.url);
    const keys = await scanKeys(inspect, redis.prefix);
    assert.deepEqual(keys.filter((k) => k.includes('{n:doomed-node#')), []);
    assert.ok(!(await leaseNodes(inspect, redis.prefix)).includes('doomed-node'));
    assert.equal(await inspect.exists(`${redis.prefix}{u:ghost}devices`), 0);

    // Last (it joins the room again): the session resumes on the survivor with what was kept, in its room.
    const token = survivor.token({ sub: 'ghost', device_id: 'g1' });
    const back = await TestClient.connect(survivor.port, `token=${encodeURIComponent(token)}&resume=${encodeURIComponent(String(ghost.welcome.session))}`);
    t.after(() => back.close());
    assert.equal((await back.next('welcome')).resumed, true);
    assert.deepEqual(await back.next('offer'), { type: 'offer', from: 'watcher', from_device: 'w1', payload: 'hello?' });
    assert.deepEqual(await back.next('message'), { type: 'message', room: 'r', from: 'watcher', from_device: 'w1', payload: 'while dead' });
    await watcher.next('member_joined', (f) => f.user === 'ghost');
    await watcher.request({ type: 'publish', room: 'r', payload: 'after' }, 'ack');
    assert.equal((await back.next('message')).payload, 'after');
    await back.goodbye();
  });

  test('SIGTERM: the node drains, exits 0 and leaves no key of its own in Redis', async (t) => {
    const redis = await startRedis(t);
    const env = { REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix, PRESENCE_TTL_MS: String(PRESENCE_TTL_MS) };
    const leaving = await spawnNode(t, { ...env, JWT_SECRET: TEST_SECRET, NODE_ID: 'leaving-clean', DRAIN_SPREAD_MS: '200' });
    const staying = await startTestNode(t, env);

    const observer = await TestClient.welcomed(staying.port, staying.token({ sub: 'observer', device_id: 'o1' }));
    t.after(() => observer.close());
    assert.deepEqual((await observer.request({ type: 'watch', users: ['solo', 'multi'] }, 'watching')).users, { solo: 'offline', multi: 'offline' });
    await observer.request({ type: 'subscribe', room: 'lobby' }, 'subscribed');

    // `solo` lives only on the leaving node; `multi` has a device on each node.
    const solo = await TestClient.welcomed(leaving.port, staying.token({ sub: 'solo', device_id: 's1' }));
    const multiLeaving = await TestClient.welcomed(leaving.port, staying.token({ sub: 'multi', device_id: 'm1' }));
    const multiStaying = await TestClient.welcomed(staying.port, staying.token({ sub: 'multi', device_id: 'm2' }));
    t.after(() => [solo, multiLeaving, multiStaying].forEach((c) => c.close()));
    for (const c of [solo, multiLeaving, multiStaying]) await c.request({ type: 'subscribe', room: 'lobby' }, 'subscribed');
    await solo.request({ type: 'subscribe', room: 'solo-only' }, 'subscribed');
    await solo.request({ type: 'watch', users: ['observer'] }, 'watching');
    await eventually(() => assert.equal(observer.all('member_joined').length, 3));
    assert.deepEqual(await presenceOf(staying, ['solo', 'multi']), { solo: 'online', multi: 'online' });

    await eventually(() => assert.deepEqual(observer.all('presence').map((f) => `${String(f.user)}:${String(f.status)}`).sort(), ['multi:online', 'solo:online']));
    const seenBefore = observer.all('presence').length;

    leaving.kill('SIGTERM');
    assert.deepEqual(await leaving.exited, { code: 0, signal: null });
    const exitedAt = Date.now();
    for (const c of [solo, multiLeaving]) assert.equal((await c.waitClosed()).code, 1012);

    // The goodbye comes from the leaving node itself, not from a reaper (checked below).
    await eventually(() => assert.deepEqual(observer.all('presence').slice(seenBefore), [{ type: 'presence', user: 'solo', status: 'offline' }]));
    await eventually(() =>
      assert.deepEqual(
        observer
          .all('member_left')
          .map((f) => `${String(f.room)}:${String(f.user)}/${String(f.device)}`)
          .sort(),
        ['lobby:multi/m1', 'lobby:solo/s1'],
      ),
    );
    t.diagnostic(`goodbyes from the leaving node ${Date.now() - exitedAt} ms after it exited`);
    assert.deepEqual(staying.logs.filter((l) => l.msg === 'reaping a node whose lease expired'), [], 'the leaving node was reaped instead of leaving cleanly');
    assert.deepEqual(await presenceOf(staying, ['solo', 'multi']), { solo: 'offline', multi: 'online' });
    // `multi` never went offline: one of its devices stayed.
    assert.deepEqual(observer.all('presence').slice(seenBefore), [{ type: 'presence', user: 'solo', status: 'offline' }]);
    assert.equal(multiStaying.closed, undefined);

    const inspect = inspector(t, redis.url);
    const keys = await scanKeys(inspect, redis.prefix);
    assert.deepEqual(keys.filter((k) => k.includes('leaving-clean')), []);
    assert.equal(await inspect.exists(`${redis.prefix}{u:solo}devices`), 0);
    assert.deepEqual(await inspect.hkeys(`${redis.prefix}{u:multi}devices`), ['m2']);
    assert.equal(await inspect.exists(`${redis.prefix}{r:solo-only}members`), 0);
    const lobby = await inspect.hvals(`${redis.prefix}{r:lobby}members`);
    assert.deepEqual(lobby.filter((v) => v.includes('/leaving-clean#')), []);
    assert.equal(lobby.length, 2);
    // Only the staying node holds a lease.
    assert.deepEqual(await leaseNodes(inspect, redis.prefix), [staying.config.nodeId]);
  });

  test('Redis outage: 503 within seconds, unavailable instead of silence, clients stay; recovery restores everything', async (t) => {
    const { redis, nodes } = await startCluster(t, 2, { PRESENCE_TTL_MS: String(PRESENCE_TTL_MS) });
    const [n1, n2] = nodes as [TestNode, TestNode];
    const alice = await TestClient.welcomed(n1.port, n1.token({ sub: 'alice', device_id: 'a1' }));
    const carol = await TestClient.welcomed(n1.port, n1.token({ sub: 'carol', device_id: 'c1' }));
    const bob = await TestClient.welcomed(n2.port, n2.token({ sub: 'bob', device_id: 'b1' }));
    const watcher = await TestClient.welcomed(n2.port, n2.token({ sub: 'watcher', device_id: 'w1' }));
    const clients = [alice, carol, bob, watcher];
    t.after(() => clients.forEach((c) => c.close()));
    for (const c of [alice, bob]) await c.request({ type: 'subscribe', room: 'conf' }, 'subscribed');
    assert.deepEqual((await watcher.request({ type: 'watch', users: ['dave'] }, 'watching')).users, { dave: 'offline' });
    assert.deepEqual((await alice.request({ type: 'watch', users: ['bob'] }, 'watching')).users, { bob: 'online' });
    assert.equal((await alice.request({ type: 'offer', to: 'bob', payload: 'before' })).type, 'ack');
    await bob.next('offer', (f) => f.payload === 'before');
    for (const n of nodes) assert.equal((await http(n.port, 'GET', '/ready')).status, 200);

    // ── outage ──
    const stoppedAt = Date.now();
    await redis.stop(true);
    for (const n of nodes) {
      await eventually(async () => assert.equal((await http(n.port, 'GET', '/ready')).status, 503), 5000, 50);
      const health = await eventually(async () => {
        const res = await http(n.port, 'GET', '/health');
        assert.equal(res.status, 503, res.body);
        return res.json() as Record<string, unknown>;
      }, 5000, 50);
      assert.equal(health.status, 'unhealthy');
      assert.equal(health.redis, 'down');
      assert.equal(health.bus, 'redis');
    }
    const detectedAfter = Date.now() - stoppedAt;
    t.diagnostic(`Redis down: /ready and /health 503 on both nodes after ${detectedAfter} ms`);

    // A message that cannot be routed is refused, never silently dropped.
    const refused = await eventually(async () => {
      const reply = await alice.request({ type: 'offer', to: 'bob', payload: 'during' });
      assert.equal(reply.code, 'unavailable', JSON.stringify(reply));
      return reply;
    }, 5000, 50);
    assert.equal(refused.type, 'error');
    assert.equal(typeof refused.message, 'string');
    assert.equal((await bob.request({ type: 'answer', to: 'alice', payload: 'during' })).code, 'unavailable');
    // A room message that cannot reach the other node is refused too.
    assert.equal((await alice.request({ type: 'publish', room: 'conf', payload: 'during' })).code, 'unavailable');
    // A presence query cannot be answered truthfully: unavailable, not a made-up "offline".
    assert.equal((await alice.request({ type: 'presence', users: ['bob'] })).code, 'unavailable');

    // Same node: delivered locally and acknowledged (the recipient's node is this one; no bus needed).
    assert.equal((await alice.request({ type: 'offer', to: 'carol', payload: 'same-node' })).type, 'ack');
    assert.equal((await carol.next('offer', (f) => f.payload === 'same-node')).from, 'alice');
    // Still when the outage has outlasted the node's lease (its standing is in question, but with
    // Redis down nothing can have been kept for carol that this message could overtake: not held).
    await eventually(() => assert.ok(Date.now() - stoppedAt > PRESENCE_TTL_MS, 'the outage outlasts the lease'), PRESENCE_TTL_MS + 2000, 100);
    assert.equal((await alice.request({ type: 'offer', to: 'carol', payload: 'same-node, later' })).type, 'ack');
    assert.equal((await carol.next('offer', (f) => f.payload === 'same-node, later', 2000)).from, 'alice');

    // Everyone is still connected and answered.
    for (const c of clients) {
      assert.equal((await c.request({ type: 'ping' }, 'pong')).type, 'pong');
      assert.equal(c.closed, undefined);
    }
    assert.equal(bob.all('offer').filter((f) => f.payload === 'during').length, 0);
    assert.equal(bob.all('message').length, 0);

    // A client may even connect during the outage; it is welcomed and becomes reachable once Redis is back.
    const frank = await TestClient.welcomed(n2.port, n2.token({ sub: 'frank', device_id: 'f1' }));
    clients.push(frank);

    // The outage outlasts a lease (PRESENCE_TTL_MS): a window that must pass, so wait for it.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, stoppedAt + PRESENCE_TTL_MS + 500 - Date.now())));
    for (const c of clients) {
      assert.equal((await c.request({ type: 'ping' }, 'pong')).type, 'pong');
      assert.equal(c.closed, undefined, 'a client was disconnected by the outage');
    }
    for (const n of nodes) assert.equal((await http(n.port, 'GET', '/ready')).status, 503);

    // ── recovery (an empty Redis on the same port) ──
    await redis.start();
    for (const n of nodes) await eventually(async () => assert.equal((await http(n.port, 'GET', '/ready')).status, 200), 15_000, 50);
    for (const n of nodes) {
      const health = (await http(n.port, 'GET', '/health')).json() as Record<string, unknown>;
      assert.equal(health.status, 'healthy');
      assert.equal(health.redis, 'up');
    }

    // Bus subscriptions are back: cross-node direct messages are acked and delivered, both ways.
    assert.equal((await alice.request({ type: 'offer', to: 'bob', payload: 'after' })).type, 'ack');
    assert.deepEqual(await bob.next('offer', (f) => f.payload === 'after'), { type: 'offer', from: 'alice', from_device: 'a1', payload: 'after' });
    assert.equal((await bob.request({ type: 'answer', to: 'alice', payload: 'after' })).type, 'ack');
    await alice.next('answer', (f) => f.payload === 'after');
    // The client that connected during the outage is reachable too.
    assert.equal((await alice.request({ type: 'offer', to: 'frank', payload: 'welcome back' })).type, 'ack');
    await frank.next('offer', (f) => f.payload === 'welcome back');

    // Leases and presence are restored in the empty Redis.
    await eventually(async () => assert.deepEqual(await presenceOf(n1, ['alice', 'bob', 'carol', 'watcher', 'frank']), { alice: 'online', bob: 'online', carol: 'online', watcher: 'online', frank: 'online' }), 10_000, 100);
    assert.deepEqual(await presenceOf(n2, ['alice', 'bob']), { alice: 'online', bob: 'online' });
    const inspect = inspector(t, redis.url);
    await eventually(async () => assert.deepEqual(await leaseNodes(inspect, redis.prefix), nodes.map((n) => n.config.nodeId).sort()), 10_000, 100);

    // Room memberships are restored: messages cross nodes again, and a newcomer sees the members.
    assert.equal((await alice.request({ type: 'publish', room: 'conf', payload: 'after' })).type, 'ack');
    assert.deepEqual(await bob.next('message', (f) => f.payload === 'after'), { type: 'message', room: 'conf', from: 'alice', from_device: 'a1', payload: 'after' });
    const erin = await TestClient.welcomed(n2.port, n2.token({ sub: 'erin', device_id: 'e1' }));
    clients.push(erin);
    assert.deepEqual(memberUsers(await erin.request({ type: 'subscribe', room: 'conf' }, 'subscribed')), ['alice/a1', 'bob/b1', 'erin/e1']);
    await alice.next('member_joined', (f) => f.user === 'erin');

    // Watches made before the outage still work for changes after it (both directions across nodes).
    const dave = await TestClient.welcomed(n1.port, n1.token({ sub: 'dave', device_id: 'd1' }));
    clients.push(dave);
    assert.deepEqual(await watcher.next('presence', (f) => f.user === 'dave'), { type: 'presence', user: 'dave', status: 'online' });
    bob.close();
    assert.deepEqual(await alice.next('presence', (f) => f.user === 'bob' && f.status === 'offline'), { type: 'presence', user: 'bob', status: 'offline' });
    await eventually(async () => assert.deepEqual(await presenceOf(n1, ['bob']), { bob: 'offline' }));
  });

  test('Redis outage: subscribe and watch are answered at once with unavailable, not held until Redis returns', async (t) => {
    const { redis, nodes } = await startCluster(t, 1);
    const [n1] = nodes as [TestNode];
    const alice = await TestClient.welcomed(n1.port, n1.token({ sub: 'alice', device_id: 'a1' }));
    t.after(() => alice.close());
    await alice.request({ type: 'subscribe', room: 'before' }, 'subscribed');
    await redis.stop(true);
    await eventually(async () => assert.equal((await http(n1.port, 'GET', '/ready')).status, 503), 5000, 50);

    const answer = async (frame: Record<string, unknown>) => {
      const id = `q${Math.random().toString(36).slice(2)}`;
      alice.send({ ...frame, id });
      return eventually(() => {
        const reply = alice.frames.find((f) => f.id === id);
        if (reply === undefined) throw new Error(`no reply within 3 s to ${JSON.stringify(frame)} while Redis is down (the request waits for Redis to come back)`);
        return reply;
      }, 3000);
    };
    const subscribed = await answer({ type: 'subscribe', room: 'during-outage' });
    assert.equal(subscribed.code, 'unavailable', JSON.stringify(subscribed));
    const watching = await answer({ type: 'watch', users: ['nobody'] });
    assert.equal(watching.code, 'unavailable', JSON.stringify(watching));
    // The refused subscribe left no membership behind: publishing there is not_subscribed.
    assert.equal((await answer({ type: 'publish', room: 'during-outage', payload: 1 })).code, 'not_subscribed');
  });

  test('Redis stalled (SIGSTOP, connections still open): the bus probe fails within seconds and senders are not left hanging', async (t) => {
    const { redis, nodes } = await startCluster(t, 2, { PRESENCE_TTL_MS: String(PRESENCE_TTL_MS) });
    const [n1, n2] = nodes as [TestNode, TestNode];
    const alice = await TestClient.welcomed(n1.port, n1.token({ sub: 'alice', device_id: 'a1' }));
    const bob = await TestClient.welcomed(n2.port, n2.token({ sub: 'bob', device_id: 'b1' }));
    t.after(() => [alice, bob].forEach((c) => c.close()));
    assert.equal((await alice.request({ type: 'offer', to: 'bob', payload: 'before' })).type, 'ack');
    const pid = redis.pid;
    assert.ok(pid !== undefined);

    const stalledAt = Date.now();
    process.kill(pid, 'SIGSTOP');
    let resumed = false;
    const resume = () => {
      if (resumed) return;
      resumed = true;
      try {
        process.kill(pid, 'SIGCONT');
      } catch (error) {
        // ESRCH: teardown already killed the stopped server.
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
      }
    };
    t.after(resume);

    // SPEC §6.1: a probe that does not come back within 2 s makes the node unhealthy.
    for (const n of nodes) {
      await eventually(async () => assert.equal((await http(n.port, 'GET', '/ready')).status, 503), 6000, 50);
      const health = (await http(n.port, 'GET', '/health')).json() as Record<string, unknown>;
      assert.equal(health.status, 'unhealthy');
      assert.equal(health.redis, 'down');
    }
    t.diagnostic(`Redis stalled: /ready 503 on both nodes after ${Date.now() - stalledAt} ms`);

    // A message sent now gets an answer (unavailable) instead of waiting for Redis forever.
    const id = 'stalled-offer';
    alice.send({ type: 'offer', to: 'bob', id, payload: 'during' });
    const reply = await eventually(() => {
      const found = alice.frames.find((f) => f.id === id);
      if (found === undefined) throw new Error('no reply within 5 s to an offer while Redis is stalled (the publish waits on Redis with no timeout)');
      return found;
    }, 5000);
    assert.equal(reply.code, 'unavailable', JSON.stringify(reply));

    resume();
    for (const n of nodes) await eventually(async () => assert.equal((await http(n.port, 'GET', '/ready')).status, 200), 10_000, 50);
    assert.equal((await alice.request({ type: 'offer', to: 'bob', payload: 'after' })).type, 'ack');
    await bob.next('offer', (f) => f.payload === 'after');
  });
});
