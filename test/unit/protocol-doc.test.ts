// docs/protocol.md's examples are checked against the code: every `C→S` frame
// decodes with the server's own codec, every client and server frame type
// has an example, and an example's error code is one the server sends.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ERROR_CODES } from '../../src/errors/codes';
import { CLIENT_FRAME_TYPES, decodeClientFrame } from '../../src/protocol/app-codec';
import { SERVER_FRAME_TYPES } from '../../src/protocol/server-frames';

const doc = readFileSync(join(__dirname, '..', '..', '..', 'docs', 'protocol.md'), 'utf8');

/** The JSON text of every `C→S` or `S→C` example line inside a fenced block. */
function examples(direction: 'C→S' | 'S→C'): string[] {
  const found: string[] = [];
  let fenced = false;
  for (const line of doc.split('\n')) {
    if (line.trim().startsWith('```')) fenced = !fenced;
    else if (fenced && line.trim().startsWith(`${direction} `)) found.push(line.trim().slice(direction.length + 1));
  }
  return found;
}

const typeOf = (text: string) => (JSON.parse(text) as { type: string }).type;

test('every client frame example decodes with the server codec, and every client frame type has one', () => {
  const frames = examples('C→S');
  for (const text of frames) {
    const decoded = decodeClientFrame(text);
    assert.ok(decoded.ok, `${text}: ${decoded.ok ? '' : decoded.error.message}`);
  }
  assert.deepEqual([...new Set(frames.map(typeOf))].sort(), [...CLIENT_FRAME_TYPES].sort());
});

test('every server frame type has an example, each is JSON with a known type, and error examples use real codes', () => {
  const frames = examples('S→C');
  const types = new Set<string>(SERVER_FRAME_TYPES);
  for (const text of frames) {
    const frame = JSON.parse(text) as { type: string; code?: string };
    assert.ok(types.has(frame.type), `unknown server frame type in ${text}`);
    if (frame.type === 'error') assert.ok(frame.code !== undefined && frame.code in ERROR_CODES, `unknown error code in ${text}`);
  }
  assert.deepEqual([...new Set(frames.map(typeOf))].sort(), [...SERVER_FRAME_TYPES].sort());
});
