// One contract for every ResumeStore implementation, run with two "nodes" on
// one backend: MemoryResumeStores sharing a MemoryResumeTable, and
// RedisResumeStores (each with its own connection) on one real redis-server
// and on a Redis Cluster. Races are made with calls issued together, not
// awaited one by one: each store answers them in the order they reached it.
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { Cluster } from 'ioredis';
import { connectRedis } from '../../src/bus/redis-clients';
import { loadConfig } from '../../src/config/load';
import { createLogger } from '../../src/log/logger';
import { MemoryResumeStore, MemoryResumeTable } from '../../src/resume/memory-resume-store';
import { RedisResumeStore } from '../../src/resume/redis-resume-store';
import type { AppendResult, BufferedMessage, ResumeStore } from '../../src/resume/resume-store';
import { eventually } from '../helpers/eventually';
import { TEST_SECRET } from '../helpers/node';
import { startRedis } from '../helpers/redis';
import { RedisProxy } from '../helpers/redis-proxy';
import { deployRedisCluster, deploySingleRedis, type RedisDeployment } from '../helpers/redis-topologies';

interface Limits {
  windowMs?: number;
  limit?: number;
}

interface Backend {
  /** Nodes "n1" and "n2" on one backend, closed in teardown. */
  nodes: [ResumeStore, ResumeStore];
  /** How many things the backend still keeps (sessions in memory, keys in Redis). */
  leftovers: () => Promise<number>;
  /** Loses everything, as a Redis restarted empty. */
  wipe: () => Promise<void>;
}

export interface ResumeFactory {
  name: string;
  create(t: TestContext, limits?: Limits): Promise<Backend>;
}

const WINDOW_MS = 60_000;
const LIMIT = 100;

const memoryFactory: ResumeFactory = {
  name: 'memory',
  create(t, { windowMs = WINDOW_MS, limit = LIMIT } = {}) {
    const table = new MemoryResumeTable();
    const nodes = [new MemoryResumeStore({ table, node: 'n1', windowMs, limit }), new MemoryResumeStore({ table, node: 'n2', windowMs, limit })] as const;
    t.after(() => table.clear());
    return Promise.resolve({
      nodes: [...nodes],
      leftovers: () => Promise.resolve(table.sessions.size),
      wipe: () => Promise.resolve(table.clear()),
    });
  },
};

/** Two stores, each on its own connection to the Redis `deploy` starts. */
function redisFactory(name: string, deploy: (t: TestContext) => Promise<RedisDeployment>): ResumeFactory {
  return {
    name,
    async create(t, { windowMs = WINDOW_MS, limit = LIMIT } = {}) {
      const { at, prefix } = await deploy(t);
      const nodes = await Promise.all(
        ['n1', 'n2'].map(async (node) => {
          const clients = await connectRedis(loadConfig({ JWT_SECRET: TEST_SECRET, NODE_ID: node, ...at }), createLogger('silent'));
          t.after(() => clients.close());
          // Every master's connection open before a race starts: a command sent while a Cluster client
          // is still connecting to its slot's master can be retried behind later ones, which the
          // per-sender order assertions would read as the store's fault.
          const redis = clients.commands;
          await Promise.all((redis instanceof Cluster ? redis.nodes('master') : [redis]).map((server) => server.ping()));
          return new RedisResumeStore({ redis: clients.commands, prefix, node, windowMs, limit });
        }),
      );
      const probe = await connectRedis(loadConfig({ JWT_SECRET: TEST_SECRET, ...at }), createLogger('silent'));
      t.after(() => probe.close());
      const redis = probe.commands;
      const servers = redis instanceof Cluster ? redis.nodes('master') : [redis];
      const keys = async () => (await Promise.all(servers.map((server) => server.keys(`${prefix}*`)))).flat();
      const leftovers = async () => (await keys()).length;
      // One key at a time: on a Cluster, a DEL of several keys must name one slot.
      const wipe = async () => void (await Promise.all((await keys()).map((key) => redis.del(key))));
      return { nodes: [nodes[0]!, nodes[1]!], leftovers, wipe };
    },
  };
}

const redisSingleFactory = redisFactory('redis', deploySingleRedis);

const redisClusterFactory = redisFactory('Redis Cluster', deployRedisCluster);

const STATE = { rooms: ['lobby', 'r:2'], watches: ['u2', '__proto__'] };
const datas = (messages: BufferedMessage[]) => messages.map((m) => m.data);

function assertIncreasing(messages: BufferedMessage[]): void {
  for (let i = 1; i < messages.length; i++) assert.ok(messages[i]!.seq > messages[i - 1]!.seq, `seq ${messages[i]!.seq} after ${messages[i - 1]!.seq}`);
}

export function resumeContract(factory: ResumeFactory): void {
  describe(`ResumeStore contract: ${factory.name}`, () => {
    test('an away session keeps its messages in order and hands them over once, on any node', async (t) => {
      const { nodes: [a, b] } = await factory.create(t);
      const claim = await a.open('s1', 'u1', 'd1', STATE);
      assert.equal(await a.append('s1', 'while live'), 'live', 'a live session buffers nothing');
      assert.equal(await a.away(claim), true);
      const sent = ['{"type":"offer","payload":1}', 'two: with a colon', '', 'ü'];
      for (const data of sent) assert.equal(await a.append('s1', data), 'queued');

      const resumed = await b.resume('s1', 'u1');
      assert.ok(resumed.resumed);
      assert.deepEqual(datas(resumed.messages), sent);
      assertIncreasing(resumed.messages);
      assert.deepEqual(resumed.state, STATE);
      assert.deepEqual(await b.back(resumed.claim), { back: true, messages: [] });
      assert.equal(await a.append('s1', 'now live'), 'live');
      assert.deepEqual(await a.resume('s1', 'u1'), { resumed: false, reason: 'taken' }, 'a live session is not resumed again');

      // Away and back again: the sequence goes on, nothing is handed over twice.
      assert.equal(await b.away(resumed.claim, { rooms: ['other'], watches: [] }), true);
      assert.equal(await b.append('s1', 'later'), 'queued');
      const again = await a.resume('s1', 'u1');
      assert.ok(again.resumed);
      assert.deepEqual(datas(again.messages), ['later']);
      assert.ok(again.messages[0]!.seq > resumed.messages.at(-1)!.seq);
      assert.deepEqual(again.state, { rooms: ['other'], watches: [] });
    });

    test("another user's session is refused and left as it was", async (t) => {
      const { nodes: [a, b] } = await factory.create(t);
      await a.away(await a.open('s1', 'u1', 'd1'));
      await a.append('s1', 'm1');
      assert.deepEqual(await b.resume('s1', 'u2'), { resumed: false, reason: 'forbidden' });
      const resumed = await b.resume('s1', 'u1');
      assert.ok(resumed.resumed);
      assert.deepEqual(datas(resumed.messages), ['m1']);
      await assert.rejects(b.open('s1', 'u2', 'd1'), 'an open session id is not opened again');
    });

    test('away and resuming sessions are listed under their user, device and rooms until back', async (t) => {
      const { nodes: [a, b] } = await factory.create(t);
      const sorted = async (ids: string[] | Promise<string[]>) => [...(await ids)].sort();
      const one = await a.open('s1', 'u1', 'd1', { rooms: ['lobby', 'r:2'], watches: [] });
      const two = await a.open('s2', 'u1', 'd2');
      await a.open('s3', 'u2', 'd1', { rooms: ['lobby'], watches: [] });
      assert.deepEqual(await a.resumable('u1'), [], 'live sessions are not listed');
      assert.deepEqual(await b.resumableInRoom('lobby'), []);

      await a.away(one);
      await a.away(two);
      assert.deepEqual(await sorted(b.resumable('u1')), ['s1', 's2']);
      assert.deepEqual(await b.resumable('u1', 'd2'), ['s2'], 'a message naming a device is kept for that device only');
      assert.deepEqual(await b.resumable('u1', 'd9'), []);
      assert.deepEqual(await b.resumable('u2'), []);
      assert.deepEqual(await b.resumableInRoom('lobby'), ['s1']);
      assert.deepEqual(await b.resumableInRoom('r:2'), ['s1']);

      // Resuming: still listed (a message arriving now is kept and handed over by back), unlisted by back.
      const resumed = await b.resume('s1', 'u1');
      assert.ok(resumed.resumed);
      assert.equal(resumed.claim.device, 'd1', 'the claim names the device the session was opened for');
      assert.deepEqual(await a.resumable('u1', 'd1'), ['s1']);
      await b.back(resumed.claim);
      assert.deepEqual(await a.resumable('u1'), ['s2']);
      assert.deepEqual(await a.resumableInRoom('lobby'), []);

      // Away again having left a room: listed under the rooms it is in now only.
      await b.away(resumed.claim, { rooms: ['r:2'], watches: [] });
      assert.deepEqual(await a.resumableInRoom('lobby'), []);
      assert.deepEqual(await a.resumableInRoom('r:2'), ['s1']);
    });

    test('a dead node released by a survivor is listed like a session sent away', async (t) => {
      const { nodes: [a, b] } = await factory.create(t);
      await a.open('s1', 'u1', 'd1', { rooms: ['lobby'], watches: [] });
      assert.equal(await b.release('s1', 'n1'), true);
      assert.deepEqual(await b.resumable('u1', 'd1'), ['s1']);
      assert.deepEqual(await b.resumableInRoom('lobby'), ['s1']);
    });

    test('an unknown session is refused as expired; appends to it are gone', async (t) => {
      const { nodes: [a] } = await factory.create(t);
      assert.deepEqual(await a.resume('never', 'u1'), { resumed: false, reason: 'expired' });
      assert.equal(await a.append('never', 'm'), 'gone');
    });

    test('a full buffer keeps nothing more and the resume is told overflow, never a silent gap', async (t) => {
      const { nodes: [a, b], leftovers } = await factory.create(t, { limit: 3 });
      await a.away(await a.open('s1', 'u1', 'd1'));
      const answers: AppendResult[] = [];
      for (let i = 0; i < 5; i++) answers.push(await a.append('s1', `m${i}`));
      assert.deepEqual(answers, ['queued', 'queued', 'queued', 'overflow', 'overflow']);
      assert.deepEqual(await b.resume('s1', 'u1'), { resumed: false, reason: 'overflow' });
      assert.deepEqual(await b.resume('s1', 'u1'), { resumed: false, reason: 'expired' }, 'an overflowed session is gone once told');
      assert.equal(await leftovers(), 0);
    });

    test('an overflow while resuming is told by back, and the session is gone', async (t) => {
      const { nodes: [a, b], leftovers } = await factory.create(t, { limit: 2 });
      await a.away(await a.open('s1', 'u1', 'd1'));
      await a.append('s1', 'm1');
      const resumed = await b.resume('s1', 'u1');
      assert.ok(resumed.resumed);
      // What the resume handed over counts until back drops it.
      assert.equal(await a.append('s1', 'm2'), 'queued');
      assert.equal(await a.append('s1', 'm3'), 'overflow');
      assert.deepEqual(await b.back(resumed.claim), { back: false, reason: 'overflow' });
      assert.equal(await leftovers(), 0);
    });

    test('after the window a resume is refused as expired and nothing of the session is left', async (t) => {
      const { nodes: [a, b], leftovers } = await factory.create(t, { windowMs: 300 });
      const claim = await a.open('s1', 'u1', 'd1', STATE);
      await a.away(claim);
      assert.equal(await a.append('s1', 'm1'), 'queued');
      await a.open('s2', 'u1', 'd1');
      await eventually(async () => assert.equal(await b.append('s1', 'late'), 'gone'), 3000, 20);
      assert.deepEqual(await b.resume('s1', 'u1'), { resumed: false, reason: 'expired' });
      await eventually(async () => assert.equal(await leftovers(), 1, 'only the live session s2 is kept'), 3000, 20);
    });

    test('window 0: away ends the session at once', async (t) => {
      const { nodes: [a], leftovers } = await factory.create(t, { windowMs: 0 });
      assert.equal(await a.away(await a.open('s1', 'u1', 'd1')), true);
      assert.equal(await a.append('s1', 'm1'), 'gone');
      assert.deepEqual(await a.resume('s1', 'u1'), { resumed: false, reason: 'expired' });
      assert.equal(await leftovers(), 0);
    });

    test('two nodes resuming one session at once: one gets the messages, the other is refused', async (t) => {
      const { nodes: [a, b] } = await factory.create(t);
      for (let round = 0; round < 20; round++) {
        const session = `s${round}`;
        await a.away(await a.open(session, 'u1', 'd1'));
        await a.append(session, 'm1');
        await a.append(session, 'm2');
        const results = await Promise.all([a.resume(session, 'u1'), b.resume(session, 'u1')]);
        const winners = results.filter((r) => r.resumed);
        assert.equal(winners.length, 1, `round ${round}: ${JSON.stringify(results)}`);
        assert.deepEqual(datas(winners[0]!.messages), ['m1', 'm2']);
        assert.deepEqual(
          results.find((r) => !r.resumed),
          { resumed: false, reason: 'taken' },
        );
      }
    });

    test('appends racing a resume are in its take or in the back that ends it, once each and in order', async (t) => {
      const { nodes: [a, b] } = await factory.create(t, { limit: 1000 });
      const claim = await a.open('s1', 'u1', 'd1');
      await a.away(claim);
      const appends: Promise<AppendResult>[] = [];
      let resumed: ReturnType<ResumeStore['resume']> | undefined;
      for (let i = 0; i < 300; i++) {
        // Appends from both nodes, the resume issued in the middle of them.
        appends.push(Promise.resolve((i % 2 === 0 ? a : b).append('s1', `m${i}`)));
        if (i === 150) resumed = b.resume('s1', 'u1');
      }
      const answers = await Promise.all(appends);
      const taken = await resumed!;
      assert.ok(taken.resumed);
      const back = await b.back(taken.claim);
      assert.ok(back.back);
      assert.ok(answers.every((answer) => answer === 'queued'), 'the session buffers until back');
      // Node b's connection answers in order: its appends before the resume are in the take, those after in back.
      assert.ok(taken.messages.length > 0 && back.messages.length > 0, 'the appends straddled the resume');
      const all = [...taken.messages, ...back.messages];
      assertIncreasing(all);
      assert.deepEqual(datas(all).sort(), answers.map((_, i) => `m${i}`).sort(), 'every queued message once');
      // Per sender, the order of its appends is kept.
      for (const parity of [0, 1]) {
        const mine = datas(all).map((d) => Number(d.slice(1))).filter((n) => n % 2 === parity);
        assert.deepEqual(mine, [...mine].sort((x, y) => x - y));
      }
      assert.equal(await a.append('s1', 'after back'), 'live');
    });

    test('a superseded claim is fenced: its away, save, back and end change nothing', async (t) => {
      const { nodes: [a, b] } = await factory.create(t);
      const old = await a.open('s1', 'u1', 'd1', STATE);
      assert.equal(await a.save(old, { rooms: ['saved'], watches: ['u9'] }), true);
      assert.equal(await a.away(old), true);
      assert.equal(await a.away(old), false, 'away twice');
      const resumed = await b.resume('s1', 'u1');
      assert.ok(resumed.resumed);
      assert.deepEqual(resumed.state, { rooms: ['saved'], watches: ['u9'] }, 'away without a state keeps the saved one');
      assert.equal(await a.save(old, STATE), false);
      assert.equal(await a.away(old), false);
      assert.deepEqual(await a.back(old), { back: false, reason: 'taken' });
      assert.equal(await a.end(old), false);
      assert.deepEqual(await b.back(resumed.claim), { back: true, messages: [] });
      assert.deepEqual(await b.back(resumed.claim), { back: false, reason: 'taken' }, 'back twice');
      assert.equal(await a.append('s1', 'm'), 'live', 'the session stayed with its new holder');
    });

    test("release sends away a dead node's sessions only, with their saved state", async (t) => {
      const { nodes: [a, b] } = await factory.create(t);
      const claim = await a.open('s1', 'u1', 'd1');
      await a.save(claim, STATE);
      assert.equal(await b.release('s1', 'n2'), false, 'n2 does not hold it');
      assert.equal(await b.release('s1', 'n1'), true);
      assert.equal(await b.release('s1', 'n1'), false, 'already away');
      assert.equal(await b.append('s1', 'm1'), 'queued');
      const resumed = await b.resume('s1', 'u1');
      assert.ok(resumed.resumed);
      assert.deepEqual(resumed.state, STATE);
      assert.deepEqual(datas(resumed.messages), ['m1']);
      assert.equal(await a.away(claim), false, "the dead node's old claim is fenced");
    });

    test('a resume that never reaches back loses nothing: the next one gets it all again, same seq', async (t) => {
      const { nodes: [a, b] } = await factory.create(t);
      await a.away(await a.open('s1', 'u1', 'd1'));
      await a.append('s1', 'm1');
      const first = await b.resume('s1', 'u1');
      assert.ok(first.resumed);
      assert.equal(await a.append('s1', 'm2'), 'queued');
      assert.equal(await b.away(first.claim), true);
      assert.equal(await a.append('s1', 'm3'), 'queued');
      const second = await a.resume('s1', 'u1');
      assert.ok(second.resumed);
      assert.deepEqual(datas(second.messages), ['m1', 'm2', 'm3']);
      assert.equal(second.messages[0]!.seq, first.messages[0]!.seq);

      // The same when the resuming node died and a survivor released its sessions.
      assert.equal(await a.release('s1', 'n1'), true);
      const third = await b.resume('s1', 'u1');
      assert.ok(third.resumed);
      assert.deepEqual(third.messages, second.messages);
      assert.deepEqual(await b.back(third.claim), { back: true, messages: [] });
      assert.equal(await b.away(third.claim), true);
      const fourth = await a.resume('s1', 'u1');
      assert.ok(fourth.resumed);
      assert.deepEqual(fourth.messages, [], 'back dropped what was handed over');
    });

    test('a node whose hold lapsed takes back its released session, with what was kept meanwhile', async (t) => {
      const { nodes: [a, b] } = await factory.create(t);
      const claim = await a.open('s1', 'u1', 'd1');
      await a.save(claim, STATE);
      assert.equal(await b.release('s1', 'n1'), true, 'a peer judged node n1 dead');
      assert.equal(await b.append('s1', 'm1'), 'queued');
      assert.equal(await b.append('s1', 'm2'), 'queued');

      const reclaimed = await a.reclaim(claim, false);
      assert.ok(reclaimed.reclaimed);
      assert.deepEqual(datas(reclaimed.messages), ['m1', 'm2']);
      assertIncreasing(reclaimed.messages);
      assert.equal(await b.append('s1', 'm3'), 'live', 'live again: a message reaches its connection');
      assert.deepEqual(await b.resumableInRoom('lobby'), [], 'no longer listed as away');
      assert.deepEqual(await b.resume('s1', 'u1'), { resumed: false, reason: 'taken' });
      assert.deepEqual(await a.reclaim(claim, false), { reclaimed: true, messages: [] }, 'a reclaim of a held session changes nothing');

      // The claim holds as before: the session goes away and resumes with its saved state.
      assert.equal(await a.away(claim), true);
      assert.equal(await b.append('s1', 'm4'), 'queued');
      const resumed = await b.resume('s1', 'u1');
      assert.ok(resumed.resumed);
      assert.deepEqual(resumed.state, STATE);
      assert.deepEqual(datas(resumed.messages), ['m4']);
    });

    test('a reclaim is fenced: lost to a resume elsewhere, and none of a session its node sent away', async (t) => {
      const { nodes: [a, b] } = await factory.create(t);
      const claim = await a.open('s1', 'u1', 'd1');
      await b.release('s1', 'n1');
      await b.append('s1', 'm1');
      const resumed = await b.resume('s1', 'u1');
      assert.ok(resumed.resumed);
      assert.deepEqual(await a.reclaim(claim, false), { reclaimed: false });
      assert.deepEqual(await b.back(resumed.claim), { back: true, messages: [] }, 'the resume is untouched');

      const other = await a.open('s2', 'u1', 'd1');
      assert.equal(await a.away(other), true);
      assert.deepEqual(await a.reclaim(other, false), { reclaimed: false });
      assert.equal(await a.append('s2', 'm'), 'queued', 'still away');
    });

    test('a session released mid-resume is reclaimed mid-resume: back still hands over what came meanwhile', async (t) => {
      const { nodes: [a, b] } = await factory.create(t);
      await a.away(await a.open('s1', 'u1', 'd1'));
      await a.append('s1', 'm1');
      const resumed = await b.resume('s1', 'u1');
      assert.ok(resumed.resumed);
      assert.equal(await a.release('s1', 'n2'), true);
      assert.equal(await a.append('s1', 'm2'), 'queued');
      assert.deepEqual(await b.reclaim(resumed.claim, true), { reclaimed: true, messages: [] });
      const back = await b.back(resumed.claim);
      assert.ok(back.back);
      assert.deepEqual(datas(back.messages), ['m2'], 'm1 was handed over by the resume');
    });

    test('a session the store lost (Redis restarted empty) is opened again by its reclaim', async (t) => {
      const { nodes: [a, b], wipe } = await factory.create(t);
      const claim = await a.open('s1', 'u1', 'd1');
      await wipe();
      assert.equal(await b.append('s1', 'm1'), 'gone');
      assert.deepEqual(await a.reclaim(claim, false), { reclaimed: true, messages: [] });
      assert.equal(await b.append('s1', 'm2'), 'live');
      assert.equal(await a.away(claim, STATE), true, 'the claim holds');
      assert.equal(await b.append('s1', 'm3'), 'queued');
      const resumed = await b.resume('s1', 'u1');
      assert.ok(resumed.resumed);
      assert.equal(resumed.claim.device, 'd1');
      assert.deepEqual(resumed.state, STATE);
      assert.deepEqual(datas(resumed.messages), ['m3']);
    });

    test('end removes everything of the session', async (t) => {
      const { nodes: [a, b], leftovers } = await factory.create(t);
      await a.away(await a.open('s1', 'u1', 'd1'));
      await a.append('s1', 'm1');
      const resumed = await b.resume('s1', 'u1');
      assert.ok(resumed.resumed);
      await b.append('s1', 'm2');
      assert.equal(await b.end(resumed.claim), true);
      assert.equal(await a.append('s1', 'm3'), 'gone');
      assert.deepEqual(await a.resume('s1', 'u1'), { resumed: false, reason: 'expired' });
      assert.equal(await leftovers(), 0);
    });
  });
}

resumeContract(memoryFactory);
resumeContract(redisSingleFactory);
resumeContract(redisClusterFactory);

// What only Redis has to survive: a reply lost on the network.
describe('RedisResumeStore: faults', () => {
  test("a resume whose reply is lost loses nothing: its node releases the session and the next resume gets it all", async (t) => {
    const server = await startRedis(t);
    const proxy = await RedisProxy.start(t, server.port);
    const store = async (node: string, url: string) => {
      const clients = await connectRedis(loadConfig({ JWT_SECRET: TEST_SECRET, NODE_ID: node, REDIS_URL: url }), createLogger('silent'));
      t.after(() => clients.close());
      return new RedisResumeStore({ redis: clients.commands, prefix: server.prefix, node, windowMs: WINDOW_MS, limit: LIMIT });
    };
    const a = await store('n1', proxy.url);
    const b = await store('n2', server.url);
    await b.away(await b.open('s1', 'u1', 'd1'));
    await b.append('s1', 'm1');
    await b.append('s1', 'm2');

    // The resume runs in Redis; its answer never reaches node a (the command times out).
    proxy.holdReplies();
    await assert.rejects(a.resume('s1', 'u1'));
    assert.deepEqual(await b.resume('s1', 'u1'), { resumed: false, reason: 'taken' }, 'node a holds it, unknowingly');
    proxy.releaseReplies();

    // Node a does not know its claim, but knows it may hold the session: it lets it go.
    assert.equal(await a.release('s1', 'n1'), true);
    const resumed = await b.resume('s1', 'u1');
    assert.ok(resumed.resumed);
    assert.deepEqual(datas(resumed.messages), ['m1', 'm2']);
  });
});
