// Issue 16, W2 lever 2, measured before it is built: how a turn's direct
// messages become the bytes of its PUBLISH batches. Today each message's
// envelope is a string (envelope.ts), a batch is their `<length>:<message>`
// concatenation (redis-bus.ts encodeBatch), and Buffer.from flattens and
// UTF-8-encodes it off the heap. The lever: write the pieces straight into one
// Buffer per turn, without building the strings. ns per message, median of 5.
//
//   npm run build && node dist/bench/micro/envelope.js
import assert from 'node:assert/strict';
import { encodeBatch } from '../../src/bus/redis-bus';
import { encodeEnvelope, type Envelope } from '../../src/protocol/envelope';

const ROUNDS = 5;
const TURNS = 20_000;

interface Message {
  header: Extract<Envelope, { k: 'dm' }>;
  /** The frame as the router builds it: its sender part and the client's payload text, joined. */
  senderJson: string;
  payloadJson: string;
}

function frameOf(m: Message): string {
  return `{"type":"message",${m.senderJson},"payload":${m.payloadJson}}`;
}

/** Today: strings, concatenated per batch, then one Buffer.from per batch. */
function today(batches: Message[][]): Buffer[] {
  return batches.map((batch) => Buffer.from(encodeBatch(batch.map((m) => encodeEnvelope(m.header, frameOf(m))))));
}

/** The lever: every piece written into one Buffer for the turn; each batch a view of it. */
function written(batches: Message[][]): Buffer[] {
  let bytes = 0;
  for (const batch of batches) for (const m of batch) bytes += 3 * (m.header.o.length + m.header.s.length + m.header.t.length + m.header.m.length + m.senderJson.length + m.payloadJson.length + 64);
  const buffer = Buffer.allocUnsafe(bytes);
  const out: Buffer[] = [];
  let at = 0;
  for (const batch of batches) {
    const start = at;
    for (const m of batch) {
      const h = m.header;
      // The prefix counts UTF-16 units of the message, as decodeBatch slices the decoded string.
      // "dm o s t m\n" is 7 characters besides the fields; the frame's fixed parts are 30.
      const length = 37 + h.o.length + h.s.length + h.t.length + h.m.length + m.senderJson.length + m.payloadJson.length;
      at += buffer.write(`${length}:dm `, at, 'latin1');
      at += buffer.write(h.o, at);
      buffer[at++] = 0x20;
      at += buffer.write(h.s, at);
      buffer[at++] = 0x20;
      at += buffer.write(h.t, at);
      buffer[at++] = 0x20;
      at += buffer.write(h.m, at);
      at += buffer.write('\n{"type":"message",', at, 'latin1');
      at += buffer.write(m.senderJson, at);
      at += buffer.write(',"payload":', at, 'latin1');
      at += buffer.write(m.payloadJson, at);
      buffer[at++] = 0x7d;
    }
    out.push(buffer.subarray(start, at));
  }
  return out;
}

function message(i: number, size: number): Message {
  return {
    header: { k: 'dm', o: 'node-7f3a', s: `Qm9iU2Vzc2lvbj${String(i % 100).padStart(2, '0')}`, t: 'message', m: `node-7f3a.${(1_000_000 + i).toString(36)}` },
    senderJson: `"from":"s${i}","from_device":"anon-x1y2z3"`,
    payloadJson: JSON.stringify('x'.repeat(size)),
  };
}

function nsPerMessage(fn: (b: Message[][]) => Buffer[], batches: Message[][]): number {
  const count = batches.reduce((n, b) => n + b.length, 0);
  let sink = 0;
  for (let i = 0; i < 2000; i++) sink += fn(batches).length;
  const runs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < TURNS; i++) sink += fn(batches).length;
    runs.push(Number(process.hrtime.bigint() - t0) / (TURNS * count));
  }
  if (sink === -1) console.log(sink);
  return runs.sort((a, b) => a - b)[Math.floor(ROUNDS / 2)]!;
}

// A turn of W2 at window 10: 100 senders' messages to 100 recipients (one batch each, ten messages),
// and at window 1 with 1000 pairs: 100 messages, each its own batch (its own recipient).
const shapes: Record<string, Message[][]> = {
  '100 batches × 10 messages, 64 B': Array.from({ length: 100 }, (_, b) => Array.from({ length: 10 }, (_, i) => message(b * 10 + i, 29))),
  '100 batches × 1 message, 64 B': Array.from({ length: 100 }, (_, b) => [message(b, 29)]),
  '100 batches × 1 message, 1 KiB': Array.from({ length: 100 }, (_, b) => [message(b, 989)]),
};

const rows = ['| turn | today (strings, Buffer.from) | written into one Buffer |', '|---|---:|---:|'];
for (const [name, batches] of Object.entries(shapes)) {
  const [a, b] = [written(batches), today(batches)];
  assert.ok(a.length === b.length && a.every((bytes, i) => bytes.equals(b[i]!)), 'the two encodings must give the same bytes');
  rows.push(`| ${name} | ${nsPerMessage(today, batches).toFixed(0)} ns | ${nsPerMessage(written, batches).toFixed(0)} ns |`);
}
process.stdout.write(`node ${process.version}, ns per message, median of ${ROUNDS} × ${TURNS} turns\n\n${rows.join('\n')}\n`);
