// Issue 16, W2 lever 1, measured before it is built: what decoding a client
// frame costs today (JSON.parse, then json-member.ts cuts the payload's text
// out), against one validating scan that routes without building the object
// (frame-scanner.ts, a prototype). Per frame shape, ns per frame, median of 5.
//
//   npm run build && node dist/bench/micro/decode.js
import assert from 'node:assert/strict';
import { decodeClientFrame } from '../../src/protocol/app-codec';
import { rawMember } from '../../src/protocol/json-member';
import { scanFrame } from './frame-scanner';

const FRAMES: Record<string, string> = {
  // What the bench's load generator sends (W1/W2, 64 B).
  'message, 64 B': `{"type":"message","to":"r12","payload":"${'x'.repeat(29)}"}`,
  // An ICE candidate as browsers send it, ~300 B with a nested payload.
  'candidate, ~300 B': JSON.stringify({
    type: 'candidate',
    to: 'bob',
    device: 'bob-phone',
    id: 'c17',
    payload: { candidate: 'candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag sXmP network-cost 999', sdpMid: '0', sdpMLineIndex: 0, usernameFragment: 'sXmP' },
  }),
  'message, 1 KiB': `{"type":"message","to":"r12","payload":"${'x'.repeat(989)}"}`,
};

const ROUNDS = 5;
const N = 200_000;

function nsPerOp(fn: (text: string) => unknown, text: string): number {
  let sink = 0;
  for (let i = 0; i < 20_000; i++) sink += fn(text) === undefined ? 0 : 1; // warm up
  const runs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) sink += fn(text) === undefined ? 0 : 1;
    runs.push(Number(process.hrtime.bigint() - t0) / N);
  }
  if (sink === -1) console.log(sink);
  return runs.sort((a, b) => a - b)[Math.floor(ROUNDS / 2)]!;
}

const candidates: Record<string, (text: string) => unknown> = {
  'decodeClientFrame (today)': decodeClientFrame,
  'JSON.parse alone': (text) => JSON.parse(text) as unknown,
  'rawMember alone': (text) => rawMember(text, 'payload'),
  'scanFrame (prototype)': scanFrame,
};

const rows: string[] = ['| frame | ' + Object.keys(candidates).join(' | ') + ' |', '|---|' + Object.keys(candidates).map(() => '---:').join('|') + '|'];
for (const [name, text] of Object.entries(FRAMES)) {
  // The prototype must read what the decoder reads.
  const decoded = decodeClientFrame(text);
  const scanned = scanFrame(text);
  assert.ok(decoded.ok && scanned !== undefined && 'to' in decoded.frame);
  assert.deepEqual([scanned.type, scanned.to, scanned.payloadJson], [decoded.frame.type, decoded.frame.to, decoded.frame.payloadJson]);
  const cells = Object.values(candidates).map((fn) => `${nsPerOp(fn, text).toFixed(0)} ns`);
  rows.push(`| ${name} (${text.length} B) | ${cells.join(' | ')} |`);
}
process.stdout.write(`node ${process.version}, median of ${ROUNDS} × ${N} frames\n\n${rows.join('\n')}\n`);
