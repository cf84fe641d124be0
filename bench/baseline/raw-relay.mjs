// The benchmark's baseline: the least a relay on uWebSockets.js can do, with
// none of Switchboard's work (no JSON, no auth, no rate limits, no metrics).
// Switchboard's results are reported as ratios to this server, measured in the
// same run on the same machine.
//
//   node bench/baseline/raw-relay.mjs [--port 0] [--host 127.0.0.1] [--redis redis://127.0.0.1:6379 | --redis-cluster host:port,...]
//                                     [--prefix raw:] [--uncorked]
//
// One /ws endpoint; the query says what a socket is:
//   ?id=<name>              registers the socket under <name> (and, with --redis, subscribes to <prefix><name>)
//   &to=<name>              every frame from it is forwarded unchanged to socket <name>: a local
//                           socket directly; otherwise (with --redis) published on <prefix><name>
//   &ack=1                  every forwarded frame is answered with ACK to its sender once it was handed
//                           on: written to a local socket, or published to Redis (W7's call setups)
//   ?sub=<topic>            subscribed to <topic> (uWS pub/sub)
//   ?pub=<topic>            every frame from it is app.publish()ed to <topic>
// Every socket gets one small frame on open (like Switchboard's welcome), so
// clients know the upgrade finished; idle sockets then just stay.
//
// Corked per turn, as Switchboard's outbox does (src/transport/uws-server.ts):
// frames for a socket are gathered during an event-loop turn and written at
// its end (setImmediate), in one cork when there are several, so a turn costs
// one write per socket, not one per frame. `--uncorked` writes each frame at
// once (the baseline of the first performance round, kept for comparison).
//
// Two nodes: run two processes on one Redis. Messages for remote sockets are
// gathered per destination during an event-loop turn and flushed with
// setImmediate as one PUBLISH per destination, all in one call of the Lua
// script Switchboard's Redis bus uses, as length-prefixed batches — the
// technique Switchboard uses, so the comparison is about everything else.
// On a Redis Cluster (--redis-cluster) a script call must stay in one slot, so
// each destination's batch is one SPUBLISH (sharded pub/sub), as Switchboard's
// bus does there.
//
// Prints one JSON line {"msg":"raw listening","port":N} when it listens; exits on SIGTERM/SIGINT.
import { readFileSync } from 'node:fs';
import uWS from 'uWebSockets.js';
import Redis from 'ioredis';

const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : args[i + 1];
};
const host = arg('host', '127.0.0.1');
const port = Number(arg('port', '0'));
const redisUrl = arg('redis', '');
const clusterNodes = arg('redis-cluster', '');
const prefix = arg('prefix', 'raw:');
const corked = !args.includes('--uncorked');

const WELCOME = '{"type":"welcome"}';
// What Switchboard answers a message with an `id` once it was handed to the recipient's node (SPEC §3.2).
const ACK = '{"type":"ack"}';
const sockets = new Map();
const app = uWS.App();

let pub;
let sub;
let pending = new Map();
/** Senders (with `ack=1`) of the frames in `pending`, one entry per frame: acked once the publish returns. */
let pendingAcks = [];
let flushScheduled = false;

function encodeBatch(messages) {
  let out = '';
  for (const m of messages) out += `${m.length}:${m}`;
  return out;
}

function flush() {
  flushScheduled = false;
  const batches = pending;
  const acks = pendingAcks;
  pending = new Map();
  pendingAcks = [];
  const args = [];
  let published;
  if (clusterNodes !== '') {
    published = Promise.all([...batches].map(([to, messages]) => pub.spublish(prefix + to, encodeBatch(messages))));
  } else {
    for (const [to, messages] of batches) args.push(prefix + to, encodeBatch(messages));
    published = pub.publishBatches(...args);
  }
  published.then(
    () => acks.forEach(ackSender),
    (error) => console.error('publish failed', error),
  );
}

// A closed uWS socket may not be touched: its user data (kept here) says whether it still is open.
function ackSender({ ws, data }) {
  if (!data.closed) send(ws, ACK);
}

function publishRemote(to, text, sender) {
  const data = sender.getUserData();
  if (data.ack) pendingAcks.push({ ws: sender, data });
  let list = pending.get(to);
  if (list === undefined) pending.set(to, (list = []));
  list.push(text);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flush);
  }
}

// Sockets with frames waiting for the end of the turn; each socket's frames wait in its user data.
let outbox = [];
let outboxScheduled = false;

function flushOutbox() {
  outboxScheduled = false;
  const targets = outbox;
  outbox = [];
  for (const ws of targets) {
    const data = ws.getUserData();
    const frames = data.queued;
    data.queued = undefined;
    if (data.closed) continue;
    if (frames.length === 1) ws.send(frames[0], false);
    else ws.cork(() => frames.forEach((frame) => ws.send(frame, false)));
  }
}

/** Sends a text frame: at the end of the turn, corked with the socket's others (or at once with --uncorked). */
function send(ws, text) {
  if (!corked) return void ws.send(text, false);
  const data = ws.getUserData();
  if (data.queued !== undefined) return void data.queued.push(text);
  data.queued = [text];
  outbox.push(ws);
  if (!outboxScheduled) {
    outboxScheduled = true;
    setImmediate(flushOutbox);
  }
}

function deliverBatch(channel, payload) {
  const ws = sockets.get(channel.slice(prefix.length));
  if (ws === undefined) return;
  const each = () => {
    let at = 0;
    while (at < payload.length) {
      const colon = payload.indexOf(':', at);
      const length = Number(payload.slice(at, colon));
      send(ws, payload.slice(colon + 1, colon + 1 + length));
      at = colon + 1 + length;
    }
  };
  if (corked) each();
  else ws.cork(each);
}

const utf8 = new TextDecoder();

app.ws('/ws', {
  compression: uWS.DISABLED,
  maxPayloadLength: 256 * 1024,
  maxBackpressure: 2 * 1024 * 1024,
  idleTimeout: 120,
  sendPingsAutomatically: true,
  upgrade: (res, req, context) => {
    const q = new URLSearchParams(req.getQuery() ?? '');
    res.upgrade(
      { id: q.get('id') ?? '', to: q.get('to') ?? '', sub: q.get('sub') ?? '', pub: q.get('pub') ?? '', ack: q.get('ack') === '1' },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      context,
    );
  },
  open: (ws) => {
    const data = ws.getUserData();
    if (data.id !== '') {
      sockets.set(data.id, ws);
      if (sub !== undefined) (clusterNodes === '' ? sub.subscribe(prefix + data.id) : sub.ssubscribe(prefix + data.id)).catch(() => undefined);
    }
    if (data.sub !== '') ws.subscribe(data.sub);
    ws.send(WELCOME, false);
  },
  message: (ws, message, isBinary) => {
    const data = ws.getUserData();
    if (data.pub !== '') {
      app.publish(data.pub, message, isBinary);
      return;
    }
    if (data.to === '') return;
    const target = sockets.get(data.to);
    if (target !== undefined && !corked) target.send(message, isBinary);
    // The message buffer is only borrowed: decode it now (the bench sends text frames only).
    else if (target !== undefined) send(target, utf8.decode(message));
    else if (pub !== undefined) return void publishRemote(data.to, utf8.decode(message), ws);
    else return;
    if (data.ack) send(ws, ACK);
  },
  close: (ws) => {
    const data = ws.getUserData();
    data.closed = true;
    if (data.id !== '' && sockets.get(data.id) === ws) {
      sockets.delete(data.id);
      if (sub !== undefined) (clusterNodes === '' ? sub.unsubscribe(prefix + data.id) : sub.sunsubscribe(prefix + data.id)).catch(() => undefined);
    }
  },
});

if (clusterNodes !== '') {
  const nodes = clusterNodes.split(',').map((hostPort) => {
    const [h, p] = hostPort.split(':');
    return { host: h, port: Number(p) };
  });
  pub = new Redis.Cluster(nodes, { redisOptions: { maxRetriesPerRequest: 1 } });
  sub = new Redis.Cluster(nodes, { shardedSubscribers: true });
  await Promise.all([pub.ping(), new Promise((resolve) => sub.once('ready', resolve))]);
  sub.on('smessage', deliverBatch);
} else if (redisUrl !== '') {
  pub = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  sub = new Redis(redisUrl, { lazyConnect: true });
  await Promise.all([pub.connect(), sub.connect()]);
  sub.on('message', deliverBatch);
  // Switchboard's script (src/bus/lua/publish-batches.lua): one call publishes every destination's batch.
  pub.defineCommand('publishBatches', { numberOfKeys: 0, lua: readFileSync(new URL('../../src/bus/lua/publish-batches.lua', import.meta.url), 'utf8') });
}

let listenSocket;
app.listen(host, port, (socket) => {
  if (socket === false) {
    console.error(`raw-relay: could not listen on ${host}:${port}`);
    process.exit(1);
  }
  listenSocket = socket;
  process.stdout.write(`${JSON.stringify({ msg: 'raw listening', port: uWS.us_socket_local_port(socket) })}\n`);
});

const stop = () => {
  if (listenSocket !== undefined) uWS.us_listen_socket_close(listenSocket);
  pub?.disconnect();
  sub?.disconnect();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
