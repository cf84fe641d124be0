// The traffic generator and ledger against a tiny in-process fake of the
// resume protocol (SPEC §3.9), so the harness is shown to count right on
// its own: a server that keeps its promises gives 0 lost/duplicated/
// reordered with every reconnect resumed, and each kind of broken promise
// (resume ignored, an acked message dropped, a message delivered twice,
// an answer never sent) shows up in its own figure.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import jwt from 'jsonwebtoken';
import { WebSocketServer, type WebSocket } from 'ws';
import { eventually } from '../helpers/eventually';
import { Ledger } from './ledger';
import { Traffic } from './traffic';

interface Faults {
  /** Answer resumed:false without a reason and start a new session (the server before resume). */
  ignoreResume?: boolean;
  /** Acknowledge the n-th message and deliver it to no one. */
  dropAcked?: number;
  /** Deliver the n-th message twice. */
  deliverTwice?: number;
  /** Never answer the n-th message (it is delivered). */
  silent?: number;
}

interface Session {
  user: string;
  socket: WebSocket | undefined;
  /** Frames for the recipient while it is away, replayed on resume. */
  away: string[];
}

/** A fake node: sessions with replay, direct messages with ack / ack queued / peer_offline. */
async function fakeSwitchboard(t: TestContext, faults: Faults = {}) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/ws' });
  await new Promise((resolve) => wss.once('listening', resolve));
  t.after(() => {
    // close() waits for the connections, which it does not end itself.
    wss.clients.forEach((ws) => ws.terminate());
    return new Promise((resolve) => wss.close(resolve));
  });
  const sessions = new Map<string, Session>();
  const current = new Map<string, string>();
  let nextSession = 0;
  let count = 0;
  wss.on('connection', (socket, req) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const user = String((jwt.decode(url.searchParams.get('token') ?? '') as { sub?: unknown } | null)?.sub);
    const asked = url.searchParams.get('resume');
    let id = asked ?? '';
    let session = asked === null || faults.ignoreResume === true ? undefined : sessions.get(asked);
    const resumed = session !== undefined && session.user === user;
    if (!resumed || session === undefined) {
      id = `s${++nextSession}`;
      session = { user, socket: undefined, away: [] };
      sessions.set(id, session);
    }
    const own = session;
    own.socket = socket;
    current.set(user, id);
    socket.send(JSON.stringify({ type: 'welcome', user, device: 'd', session: id, node: 'fake', heartbeat_ms: 30000, resumed, ...(asked !== null && !resumed && faults.ignoreResume !== true ? { reason: 'expired' } : {}) }));
    for (const frame of own.away.splice(0)) socket.send(frame);
    socket.on('close', (code) => {
      if (own.socket === socket) own.socket = undefined;
      if (code === 1000) sessions.delete(id);
    });
    socket.on('message', (data: Buffer) => {
      const f = JSON.parse(data.toString()) as { to: string; id: string; payload: unknown };
      const n = ++count;
      const to = sessions.get(current.get(f.to) ?? '');
      if (to === undefined) return socket.send(JSON.stringify({ type: 'error', code: 'peer_offline', id: f.id }));
      const frame = JSON.stringify({ type: 'message', from: user, from_device: 'd', payload: f.payload });
      const copies = n === faults.dropAcked ? 0 : n === faults.deliverTwice ? 2 : 1;
      for (let i = 0; i < copies; i++) {
        if (to.socket !== undefined) to.socket.send(frame);
        else to.away.push(frame);
      }
      if (n !== faults.silent) socket.send(JSON.stringify({ type: 'ack', id: f.id, ...(to.socket === undefined ? { queued: true } : {}) }));
    });
  });
  return {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/ws`,
    /** Drops every connection without a close frame, as a killed node does. */
    kill: () => wss.clients.forEach((ws) => ws.terminate()),
  };
}

const phase = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function exercise(t: TestContext, faults: Faults = {}, kills = 2) {
  const server = await fakeSwitchboard(t, faults);
  const ledger = new Ledger();
  const traffic = new Traffic({ url: server.url, clients: 10, ratePerClient: 50, ledger });
  t.after(() => traffic.terminate());
  await traffic.connect();
  // Back means welcomed since the kill: a client whose close event is still on its way looks live until it comes.
  const allBack = (since: number) =>
    eventually(() => {
      const away = traffic.clients.filter((c) => !c.live || c.welcomedAt <= since).length;
      if (away > 0) throw new Error(`${away} clients away`);
    });
  traffic.startSending();
  await phase(200);
  for (let i = 0; i < kills; i++) {
    const since = performance.now();
    server.kill();
    await allBack(since);
    await phase(100);
  }
  traffic.stopSending();
  // A fault leaves exactly one message outstanding: wait for the rest only.
  const leftOver = faults.dropAcked !== undefined || faults.silent !== undefined ? 1 : 0;
  // Without resume, messages queued for an abandoned session are never delivered: nothing to wait for.
  if (faults.ignoreResume !== true)
    await eventually(() => {
      const { undelivered, unanswered } = ledger.outstanding();
      if (undelivered + unanswered > leftOver) throw new Error(`${undelivered} undelivered, ${unanswered} unanswered`);
    });
  traffic.stop();
  return { f: ledger.verdict(), stats: traffic.stats };
}

test('a server that keeps the resume promise: nothing lost, duplicated or reordered, every reconnect resumed', async (t) => {
  const { f, stats } = await exercise(t);
  assert.ok(f.sent > 50, `sent ${f.sent}`);
  assert.deepEqual([f.lost, f.duplicated, f.reordered, f.unanswered, f.strayDeliveries, f.strayAnswers], [0, 0, 0, 0, 0, 0]);
  assert.equal(f.acked + f.queued + f.cut, f.sent);
  // A message cut by the kill may never have reached the fake (the socket went before it was read).
  assert.equal(f.delivered, f.acked + f.queued + f.cutDelivered);
  assert.equal(stats.resumed, 20, `two kills, ten clients each time: ${JSON.stringify({ ...stats, refused: [...stats.refused], closes: [...stats.closes], errorsWithoutId: [...stats.errorsWithoutId] })}`);
  assert.equal(stats.reconnects, 20);
  assert.deepEqual([...stats.refused], []);
  assert.deepEqual([...stats.closes], [[1006, 20]]);
});

test('a server that ignores resume= is seen: every reconnect refused (reason none)', async (t) => {
  const { stats } = await exercise(t, { ignoreResume: true });
  assert.equal(stats.resumed, 0);
  assert.deepEqual([...stats.refused], [['none', 20]]);
});

test('an acknowledged message never delivered is lost; one delivered twice is a duplicate; one never answered is a silent drop', async (t) => {
  assert.equal((await exercise(t, { dropAcked: 5 })).f.lost, 1);
  assert.equal((await exercise(t, { deliverTwice: 7 })).f.duplicated, 1);
  // No answer on a connection that stays up: a silent drop…
  const silent = (await exercise(t, { silent: 3 }, 0)).f;
  assert.deepEqual([silent.unanswered, silent.cut], [1, 0]);
  // …but on one that closed (within the answer bound) since, in doubt: its answer may have gone down with it.
  const inDoubt = (await exercise(t, { silent: 3 })).f;
  assert.equal(inDoubt.unanswered, 0);
  assert.ok(inDoubt.cut >= 1);
});
