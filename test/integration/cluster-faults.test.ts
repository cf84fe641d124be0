// What holds under each fault (issue 12; README "Guarantees"): a node killed
// while others watch, a node cut off Redis long enough to be reaped, a drain
// during a Redis blip or while cut off Redis, a connection made during an
// outage, Redis restarted empty, a node whose clock is wrong. Observers sit on
// nodes that do not reap, so what they see crossed the bus.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { eventually } from '../helpers/eventually';
import { http } from '../helpers/http';
import { startTestNode, TEST_SECRET, type TestNode } from '../helpers/node';
import { spawnNode } from '../helpers/process';
import { startRedis } from '../helpers/redis';
import { RedisProxy } from '../helpers/redis-proxy';
import { inspector, scanKeys } from '../helpers/redis-state';
import { TestClient } from '../helpers/ws-client';

const TTL = '1500';
const LONG = 15_000;

const adminHeaders = (node: TestNode) => ({ authorization: `Bearer ${node.token({ sub: 'ops', roles: ['admin'] })}` });

async function presenceOf(node: TestNode, users: readonly string[]): Promise<Record<string, string>> {
  const res = await http(node.port, 'GET', `/v1/presence?users=${users.join(',')}`, { headers: adminHeaders(node) });
  assert.equal(res.status, 200, res.body);
  return (res.json() as { users: Record<string, string> }).users;
}

const reaped = (node: TestNode) => node.logs.some((l) => l.msg === 'reaping a node whose lease expired');
const statuses = (client: TestClient, user: string) => client.all('presence').filter((f) => f.user === user).map((f) => f.status);

/** A node reaching Redis through a proxy the test can cut, and a node reaching it directly. */
async function proxiedPair(t: TestContext, env: Record<string, string> = {}) {
  const redis = await startRedis(t);
  const proxy = await RedisProxy.start(t, redis.port);
  const common = { REDIS_PREFIX: redis.prefix, PRESENCE_TTL_MS: TTL, ...env };
  const viaProxy = await startTestNode(t, { REDIS_URL: proxy.url, ...common });
  const direct = await startTestNode(t, { REDIS_URL: redis.url, ...common });
  return { redis, proxy, viaProxy, direct };
}

async function cutOff(proxy: RedisProxy, node: TestNode): Promise<void> {
  proxy.cut();
  await eventually(async () => assert.equal((await http(node.port, 'GET', '/ready')).status, 503), 5000, 20);
}

async function heal(proxy: RedisProxy, node: TestNode): Promise<void> {
  proxy.heal();
  await eventually(async () => assert.equal((await http(node.port, 'GET', '/ready')).status, 200), LONG, 20);
}

describe('cluster faults: what holds, and how soon', () => {
  test('kill -9 with three nodes: observers on both survivors hear member_left and offline', async (t) => {
    const redis = await startRedis(t);
    const env = { REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix, PRESENCE_TTL_MS: TTL };
    const doomed = await spawnNode(t, { ...env, JWT_SECRET: TEST_SECRET, NODE_ID: 'doomed-of-three' });
    const survivors = [await startTestNode(t, env), await startTestNode(t, env)];
    const ghost = await TestClient.welcomed(doomed.port, survivors[0]!.token({ sub: 'ghost', device_id: 'g' }));
    t.after(() => ghost.close());
    await ghost.request({ type: 'subscribe', room: 'r' }, 'subscribed');
    const observers = await Promise.all(survivors.map((node, i) => TestClient.welcomed(node.port, node.token({ sub: `observer${i}` }))));
    t.after(() => observers.forEach((o) => o.close()));
    for (const observer of observers) {
      await observer.request({ type: 'subscribe', room: 'r' }, 'subscribed');
      assert.deepEqual((await observer.request({ type: 'watch', users: ['ghost'] }, 'watching')).users, { ghost: 'online' });
    }

    doomed.kill('SIGKILL');
    await doomed.exited;
    for (const observer of observers)
      await eventually(() => {
        assert.deepEqual(observer.all('member_left'), [{ type: 'member_left', room: 'r', user: 'ghost', device: 'g' }]);
        assert.deepEqual(statuses(observer, 'ghost'), ['offline']);
      }, LONG);
    // One survivor reaped; the other's observer heard it through the bus (a server-originated envelope).
    assert.deepEqual(survivors.map(reaped).sort(), [false, true]);
    for (const observer of observers) {
      await observer.request({ type: 'ping' }, 'pong');
      assert.equal(observer.all('member_left').length, 1);
      assert.deepEqual(statuses(observer, 'ghost'), ['offline']);
    }
  });

  test('a node cut off Redis long enough to be reaped comes back: online and member_joined again, traffic flows', async (t) => {
    const { proxy, viaProxy, direct } = await proxiedPair(t);
    const alice = await TestClient.welcomed(viaProxy.port, viaProxy.token({ sub: 'alice', device_id: 'a' }));
    const bob = await TestClient.welcomed(direct.port, direct.token({ sub: 'bob' }));
    t.after(() => [alice, bob].forEach((c) => c.close()));
    await alice.request({ type: 'subscribe', room: 'r' }, 'subscribed');
    await bob.request({ type: 'subscribe', room: 'r' }, 'subscribed');
    await bob.request({ type: 'watch', users: ['alice'] }, 'watching');

    await cutOff(proxy, viaProxy);
    await eventually(() => {
      assert.deepEqual(bob.all('member_left'), [{ type: 'member_left', room: 'r', user: 'alice', device: 'a' }]);
      assert.deepEqual(statuses(bob, 'alice'), ['offline']);
    }, LONG);
    assert.equal(alice.closed, undefined);

    await heal(proxy, viaProxy);
    await eventually(() => {
      assert.deepEqual(bob.all('member_joined').filter((f) => f.user === 'alice'), [{ type: 'member_joined', room: 'r', user: 'alice', device: 'a' }]);
      assert.deepEqual(statuses(bob, 'alice'), ['offline', 'online']);
    }, LONG);
    assert.deepEqual(await presenceOf(direct, ['alice']), { alice: 'online' });
    const members = await bob.request({ type: 'subscribe', room: 'r' }, 'subscribed');
    assert.deepEqual((members.members as { user: string }[]).map((m) => m.user).sort(), ['alice', 'bob']);
    await eventually(async () => {
      await bob.request({ type: 'publish', room: 'r', payload: 'back?' }, 'ack');
      await alice.next('message', (f) => f.payload === 'back?', 300);
    }, LONG);
    assert.equal((await bob.request({ type: 'offer', to: 'alice', payload: 1 })).type, 'ack');
  });

  test('a message kept for a session whose node was reaped while alive reaches the open connection once the node is back', async (t) => {
    const { proxy, viaProxy, direct } = await proxiedPair(t);
    const alice = await TestClient.welcomed(viaProxy.port, viaProxy.token({ sub: 'alice', device_id: 'a' }));
    const bob = await TestClient.welcomed(direct.port, direct.token({ sub: 'bob' }));
    t.after(() => [alice, bob].forEach((c) => c.close()));
    assert.equal((await bob.request({ type: 'offer', to: 'alice', payload: 'before' })).type, 'ack');
    await alice.next('offer', (f) => f.payload === 'before');

    await cutOff(proxy, viaProxy);
    await eventually(() => assert.ok(direct.logs.some((l) => l.msg === 'released the sessions of a dead node for resume')), LONG);
    // Alice's node is judged dead, her session is released for resume: what is sent to her now is kept.
    const kept = await bob.request({ type: 'offer', to: 'alice', payload: 'while cut off' });
    assert.deepEqual(kept, { type: 'ack', id: kept.id, queued: true });
    assert.equal(alice.closed, undefined, 'her connection never dropped');

    await heal(proxy, viaProxy);
    const reclaimed = await alice.next('offer', (f) => f.payload === 'while cut off', LONG);
    assert.equal(reclaimed.from, 'bob');
    // Her session is hers again: traffic is live, nothing is kept twice, and a resume elsewhere is refused as taken.
    await eventually(async () => assert.equal((await bob.request({ type: 'offer', to: 'alice', payload: 'after' })).queued, undefined), LONG);
    await alice.next('offer', (f) => f.payload === 'after');
    assert.equal(alice.all('offer').filter((f) => f.payload === 'while cut off').length, 1);
    const thief = await TestClient.connect(direct.port, `token=${direct.token({ sub: 'alice', device_id: 'a2' })}&resume=${String(alice.welcome.session)}`);
    t.after(() => thief.close());
    const refused = await thief.next('welcome', undefined, LONG);
    assert.deepEqual([refused.resumed, refused.reason], [false, 'taken']);
    const metrics = (await http(viaProxy.port, 'GET', '/metrics')).body;
    assert.match(metrics, /signaling_resume_reclaims_total\{[^}]*result="reclaimed"[^}]*\} 1\b/);
  });

  test('a node stalled until reaped (SIGSTOP) gives each message once, in order: what was kept for it and what waited in its sockets', async (t) => {
    const redis = await startRedis(t);
    const env = { REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix, PRESENCE_TTL_MS: TTL };
    const stalled = await spawnNode(t, { ...env, JWT_SECRET: TEST_SECRET, NODE_ID: 'stalled' });
    const peer = await startTestNode(t, env);
    const alice = await TestClient.welcomed(stalled.port, peer.token({ sub: 'alice', device_id: 'a' }));
    const bob = await TestClient.welcomed(peer.port, peer.token({ sub: 'bob', device_id: 'b' }));
    t.after(() => [alice, bob].forEach((c) => c.close()));
    await alice.request({ type: 'subscribe', room: 'r' }, 'subscribed');
    await bob.request({ type: 'subscribe', room: 'r' }, 'subscribed');
    // Her rooms are saved for resume as she joins: the release lists her session in room r.
    const inspect = inspector(t, redis.url);
    await eventually(async () => assert.match((await inspect.hget(`${redis.prefix}{s:${String(alice.welcome.session)}}resume`, 'state')) ?? '', /"r"/));

    process.kill(stalled.pid, 'SIGSTOP');
    const cont = () => (stalled.exitStatus === undefined ? process.kill(stalled.pid, 'SIGCONT') : undefined);
    t.after(cont);
    await eventually(() => assert.ok(peer.logs.some((l) => l.msg === 'released the sessions of a dead node for resume')), LONG);
    // Room messages are kept for her released session AND wait in her node's subscriber socket;
    // the direct one only waits there (her node still listens: it is acknowledged as delivered).
    await bob.request({ type: 'publish', room: 'r', payload: 1 }, 'ack');
    assert.deepEqual(Object.keys(await bob.request({ type: 'offer', to: 'alice', payload: 2 })).sort(), ['id', 'type']);
    await bob.request({ type: 'publish', room: 'r', payload: 3 }, 'ack');
    cont();

    await alice.next('message', (f) => f.payload === 3, LONG);
    await alice.request({ type: 'ping' }, 'pong');
    const payloads = alice.frames.filter((f) => f.type === 'message' || f.type === 'offer').map((f) => f.payload);
    assert.deepEqual(payloads, [1, 2, 3]);
    await eventually(() => assert.ok(stalled.logs.some((l) => l.msg === 'the node lease lapsed; reclaimed the sessions it holds')), LONG);
  });

  test('a connection made while its node is cut off Redis replaces the older one on another node once Redis answers', async (t) => {
    const { proxy, viaProxy, direct } = await proxiedPair(t);
    const older = await TestClient.welcomed(direct.port, direct.token({ sub: 'ann', device_id: 'phone' }));
    t.after(() => older.close());
    await cutOff(proxy, viaProxy);
    const newer = await TestClient.welcomed(viaProxy.port, viaProxy.token({ sub: 'ann', device_id: 'phone' }));
    t.after(() => newer.close());
    assert.equal(older.closed, undefined);
    await heal(proxy, viaProxy);
    assert.deepEqual(await older.waitClosed(LONG), { code: 4009, reason: 'replaced' });
    const ben = await TestClient.welcomed(direct.port, direct.token({ sub: 'ben' }));
    t.after(() => ben.close());
    assert.equal((await ben.request({ type: 'offer', to: 'ann', device: 'phone', payload: 'x' })).type, 'ack');
    await newer.next('offer');
    assert.equal(newer.closed, undefined);
    assert.deepEqual(await presenceOf(direct, ['ann']), { ann: 'online' });
  });

  test('a drain during a Redis blip leaves no ghost: the goodbye lost in the blip is made good', async (t) => {
    const { redis, proxy, viaProxy, direct } = await proxiedPair(t, { DRAIN_SPREAD_MS: '1000' });
    const leaver = await TestClient.welcomed(viaProxy.port, viaProxy.token({ sub: 'leaver' }));
    const last = await TestClient.welcomed(viaProxy.port, viaProxy.token({ sub: 'last' }));
    const watcher = await TestClient.welcomed(direct.port, direct.token({ sub: 'watcher' }));
    t.after(() => [leaver, last, watcher].forEach((c) => c.close()));
    assert.deepEqual((await watcher.request({ type: 'watch', users: ['leaver', 'last'] }, 'watching')).users, { leaver: 'online', last: 'online' });

    await cutOff(proxy, viaProxy);
    const stopping = viaProxy.shutdown();
    // The first socket closes at once, while Redis is unreachable: its goodbye (its session going
    // away for resume, then its presence) cannot reach Redis until the blip is over.
    assert.equal((await leaver.waitClosed()).code, 1012);
    proxy.heal();
    await stopping;

    await eventually(() => {
      for (const user of ['leaver', 'last']) assert.deepEqual(statuses(watcher, user), ['offline'], user);
    }, LONG);
    assert.deepEqual(await presenceOf(direct, ['leaver', 'last']), { leaver: 'offline', last: 'offline' });
    const keys = await scanKeys(inspector(t, redis.url), redis.prefix);
    // Presence keeps nobody but the watcher (the users' resume listings expire with RESUME_WINDOW_S).
    assert.deepEqual(keys.filter((k) => k.includes('{u:') && k.endsWith('devices')), [`${redis.prefix}{u:watcher}devices`]);
  });

  test('a node that stops while cut off Redis leaves its lease to expire: a survivor reports its users offline', async (t) => {
    const redis = await startRedis(t);
    const proxy = await RedisProxy.start(t, redis.port);
    const env = { REDIS_PREFIX: redis.prefix, PRESENCE_TTL_MS: TTL };
    const leaving = await spawnNode(t, { ...env, REDIS_URL: proxy.url, JWT_SECRET: TEST_SECRET, NODE_ID: 'cut-off', DRAIN_SPREAD_MS: '100' });
    const survivor = await startTestNode(t, { ...env, REDIS_URL: redis.url });
    const users = ['stay0', 'stay1', 'stay2'];
    const clients = await Promise.all(users.map((user) => TestClient.welcomed(leaving.port, survivor.token({ sub: user }))));
    t.after(() => clients.forEach((c) => c.close()));
    const watcher = await TestClient.welcomed(survivor.port, survivor.token({ sub: 'watcher' }));
    t.after(() => watcher.close());
    await watcher.request({ type: 'watch', users }, 'watching');

    proxy.cut();
    leaving.kill('SIGTERM');
    assert.deepEqual(await leaving.exited, { code: 0, signal: null });
    assert.ok(leaving.logs.some((l) => l.msg === 'could not leave Redis cleanly; the lease will expire and a peer reaps what is left'));
    await eventually(() => {
      for (const user of users) assert.deepEqual(statuses(watcher, user), ['offline'], user);
    }, LONG);
    assert.ok(reaped(survivor));
    assert.deepEqual(await presenceOf(survivor, users), { stay0: 'offline', stay1: 'offline', stay2: 'offline' });
  });

  test('Redis restarted empty: watchers hear "offline" for users who left during the outage', async (t) => {
    const redis = await startRedis(t);
    const env = { REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix, PRESENCE_TTL_MS: TTL };
    const [n1, n2] = [await startTestNode(t, env), await startTestNode(t, env)];
    const gone = await TestClient.welcomed(n1.port, n1.token({ sub: 'gone' }));
    const stays = await TestClient.welcomed(n1.port, n1.token({ sub: 'stays' }));
    const watcher = await TestClient.welcomed(n2.port, n2.token({ sub: 'watcher' }));
    t.after(() => [gone, stays, watcher].forEach((c) => c.close()));
    assert.deepEqual((await watcher.request({ type: 'watch', users: ['gone', 'stays'] }, 'watching')).users, { gone: 'online', stays: 'online' });

    await redis.stop(true);
    await eventually(async () => assert.equal((await http(n1.port, 'GET', '/ready')).status, 503), 5000, 20);
    gone.close();
    await eventually(async () => assert.equal((await n1.metrics.activeConnections.get()).values[0]?.value, 1));
    await redis.start();

    assert.deepEqual(await watcher.next('presence', (f) => f.user === 'gone', LONG), { type: 'presence', user: 'gone', status: 'offline' });
    await eventually(async () => assert.deepEqual(await presenceOf(n2, ['gone', 'stays']), { gone: 'offline', stays: 'online' }), LONG);
    await watcher.request({ type: 'ping' }, 'pong');
    assert.deepEqual(statuses(watcher, 'stays'), [], 'a user who stayed was announced');
  });

  test('a node whose clock runs 30 s behind is not reaped: leases are judged by Redis\'s clock', async (t) => {
    const redis = await startRedis(t);
    const dir = mkdtempSync(join(tmpdir(), 'sb-skew-'));
    const preload = join(dir, 'skew.cjs');
    writeFileSync(preload, 'const now = Date.now; Date.now = () => now() - 30000;\n');
    const env = { REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix, PRESENCE_TTL_MS: TTL };
    const skewed = await spawnNode(t, { ...env, JWT_SECRET: TEST_SECRET, NODE_ID: 'behind', NODE_OPTIONS: `--require ${preload}` });
    const survivor = await startTestNode(t, env);
    const user = await TestClient.welcomed(skewed.port, survivor.token({ sub: 'late-clock' }));
    const watcher = await TestClient.welcomed(survivor.port, survivor.token({ sub: 'watcher' }));
    t.after(() => [user, watcher].forEach((c) => c.close()));
    await watcher.request({ type: 'watch', users: ['late-clock'] }, 'watching');

    // Several leases' worth of Redis time must pass with the skewed node renewing: watch its lease move.
    const inspect = inspector(t, redis.url);
    const leaseOf = async () => {
      const leases = await inspect.zrange(`${redis.prefix}{leases}nodes`, 0, -1, 'WITHSCORES');
      const at = leases.findIndex((l) => l.startsWith('behind#'));
      return at === -1 ? undefined : Number(leases[at + 1]);
    };
    const first = await leaseOf();
    assert.ok(first !== undefined);
    await eventually(async () => assert.ok(((await leaseOf()) ?? 0) > first + 3 * Number(TTL)), LONG, 100);

    assert.equal(reaped(survivor), false, 'the node with a late clock was reaped');
    await watcher.request({ type: 'ping' }, 'pong');
    assert.deepEqual(statuses(watcher, 'late-clock'), []);
    assert.deepEqual(await presenceOf(survivor, ['late-clock']), { 'late-clock': 'online' });
  });
});
