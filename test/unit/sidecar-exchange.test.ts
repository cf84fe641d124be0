// The sidecar's exchange (src/sidecar/exchange.ts) driven as undici drives a
// dispatch handler, with a fake controller and a fake channel: whole and
// streamed responses, credit and back-pressure, cancels at every stage, and
// how each failure is reported. The same paths run end to end in
// integration/sidecar-http.test.ts; the stages that are hard to reach with a
// real back end (a cancel while the request waits for a connection, or after
// the back end finished but before the credit let it all go) are here.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Dispatcher } from 'undici';
import { CHUNK_MAX_BYTES, INITIAL_CREDIT_BYTES, streamEventPayload, type ChunkEvent } from '../../src/protocol/tunnel-stream-frames';
import type { Extension } from '../../src/protocol/tunnel-frames';
import { Exchange, type ExchangeFailure } from '../../src/sidecar/exchange';
import { MAX_WHOLE_BODY_BYTES } from '../../src/sidecar/response-writer';

type Sent = { event: string; payload: Record<string, unknown> };

/** undici's controller as the exchange sees it: an abort comes back through onResponseError at once, as undici does it. */
class FakeController implements Dispatcher.DispatchController {
  aborted = false;
  paused = false;
  reason: Error | null = null;
  resumes = 0;
  exchange: Exchange | undefined;

  abort(reason: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.exchange?.onResponseError(this, reason);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.resumes++;
  }
}

function harness(extensions: Extension[] = ['binary_body', 'stream']) {
  const sent: Sent[] = [];
  const ends: (ExchangeFailure | undefined)[] = [];
  const send = (event: string, payload: object) => sent.push({ event, payload: payload as Record<string, unknown> }) > 0;
  // Chunks recorded in their JSON form whatever the extensions (the binary form is the codec's, tested with it).
  const channel = { extensions: new Set(extensions), send, sendChunk: (chunk: ChunkEvent) => send(chunk.event, streamEventPayload(chunk)) };
  const exchange = new Exchange('r1', 'GET', '/x', { channel, body: undefined, onEnd: (_e, failure) => void ends.push(failure) });
  const controller = new FakeController();
  controller.exchange = exchange;
  return { exchange, controller, sent, ends };
}

const chunkBytes = (sent: Sent[]) => sent.filter((s) => s.event === 'proxy_res_chunk').map((s) => Buffer.from(s.payload.data as string, 'base64').length);

test('a small response goes up as one proxy_res; 1xx is skipped, hop-by-hop headers dropped', () => {
  const { exchange, controller, sent, ends } = harness();
  exchange.onRequestStart(controller);
  exchange.onResponseStart(controller, 100, {});
  exchange.onResponseStart(controller, 200, { 'content-type': 'text/plain', 'content-length': '5', connection: 'keep-alive', 'keep-alive': 'timeout=5' });
  exchange.onResponseData(controller, Buffer.from('hel'));
  exchange.onResponseData(controller, Buffer.from('lo'));
  assert.equal(sent.length, 0, 'nothing before the body is complete');
  exchange.onResponseEnd();
  assert.deepEqual(
    sent.map((s) => s.event),
    ['proxy_res'],
  );
  // As it goes on the wire, members in order.
  assert.equal(
    JSON.stringify(sent[0]?.payload),
    '{"request_id":"r1","status":200,"headers":{"Content-Type":"text/plain","Content-Length":"5"},"body":"aGVsbG8=","chunked":false,"body_encoding":"base64"}',
  );
  assert.deepEqual(ends, [undefined]);
  assert.equal(exchange.status, 200);
});

test('a streamed response never passes the credit: the back end is paused, and what waited goes at the grants, then proxy_res_end', () => {
  const { exchange, controller, sent, ends } = harness();
  exchange.onRequestStart(controller);
  exchange.onResponseStart(controller, 200, { 'transfer-encoding': 'chunked' });
  assert.equal(sent[0]?.event, 'proxy_res_start');
  const piece = Buffer.alloc(CHUNK_MAX_BYTES + 1000, 7);
  let written = 0;
  while (!controller.paused) {
    exchange.onResponseData(controller, piece);
    written += piece.length;
  }
  assert.equal(
    chunkBytes(sent).reduce((a, b) => a + b, 0),
    INITIAL_CREDIT_BYTES,
    'the whole window is used, no more',
  );
  assert.ok(chunkBytes(sent).every((n) => n <= CHUNK_MAX_BYTES));
  exchange.onResponseEnd();
  assert.equal(ends.length, 0, 'the end waits for the credit');
  exchange.grant(1000);
  assert.equal(chunkBytes(sent).at(-1), 1000);
  exchange.grant(written);
  assert.equal(
    chunkBytes(sent).reduce((a, b) => a + b, 0),
    written,
  );
  assert.deepEqual(
    sent.map((s) => s.payload.seq).filter((seq) => seq !== undefined),
    chunkBytes(sent).map((_, i) => i),
    'seq counts the chunks',
  );
  assert.equal(sent.at(-1)?.event, 'proxy_res_end');
  assert.deepEqual(ends, [undefined]);
  assert.equal(controller.resumes, 0, 'a back end that already finished is not resumed');
});

test('a grant that lets everything go resumes a paused back end', () => {
  const { exchange, controller } = harness();
  exchange.onRequestStart(controller);
  exchange.onResponseStart(controller, 200, {});
  exchange.onResponseData(controller, Buffer.alloc(INITIAL_CREDIT_BYTES + 10));
  assert.ok(controller.paused);
  exchange.grant(5);
  assert.ok(controller.paused, 'still 5 bytes waiting');
  exchange.grant(5);
  assert.equal(controller.resumes, 1);
});

test('a cancel while the request waits for a connection aborts it as soon as it has one; nothing is sent', () => {
  const { exchange, controller, sent, ends } = harness();
  exchange.cancel('cancelled by the server');
  assert.deepEqual(ends, [], 'undici reports the abort later');
  exchange.onRequestStart(controller);
  assert.ok(controller.aborted);
  assert.deepEqual(ends, [{ kind: 'cancelled', why: 'cancelled by the server' }]);
  assert.deepEqual(sent, []);
});

test('a cancel of a streamed response the back end already finished ends it at once; nothing more is sent', () => {
  const { exchange, controller, sent, ends } = harness();
  exchange.onRequestStart(controller);
  exchange.onResponseStart(controller, 200, {});
  exchange.onResponseData(controller, Buffer.alloc(INITIAL_CREDIT_BYTES + 10));
  exchange.onResponseEnd();
  const frames = sent.length;
  exchange.cancel('the tunnel socket closed');
  assert.equal(controller.aborted, false, 'nothing to abort at the back end');
  assert.deepEqual(ends, [{ kind: 'cancelled', why: 'the tunnel socket closed' }]);
  exchange.grant(INITIAL_CREDIT_BYTES);
  assert.equal(sent.length, frames);
});

test('each failure is reported once, by the stage it happened at', () => {
  const broken = new Error('socket hang up');
  const cases: [string, (h: ReturnType<typeof harness>) => void, ExchangeFailure['kind']][] = [
    ['no connection', (h) => h.exchange.onResponseError(undefined, broken), 'unreachable'],
    [
      'a whole body broken off',
      (h) => {
        h.exchange.onRequestStart(h.controller);
        h.exchange.onResponseStart(h.controller, 200, { 'content-length': '10' });
        h.exchange.onResponseError(h.controller, broken);
      },
      'broken',
    ],
    [
      'a streamed body broken off',
      (h) => {
        h.exchange.onRequestStart(h.controller);
        h.exchange.onResponseStart(h.controller, 200, {});
        h.exchange.onResponseError(h.controller, broken);
      },
      'broken_stream',
    ],
  ];
  for (const [name, run, kind] of cases) {
    const h = harness();
    run(h);
    assert.deepEqual(
      h.ends.map((e) => e?.kind),
      [kind],
      name,
    );
  }
});

test('a whole response over MAX_WHOLE_BODY_BYTES is aborted at the back end: response_too_large', () => {
  const { exchange, controller, sent, ends } = harness(['binary_body']);
  exchange.onRequestStart(controller);
  exchange.onResponseStart(controller, 200, {});
  const mib = Buffer.alloc(1024 * 1024);
  for (let i = 0; i <= MAX_WHOLE_BODY_BYTES / mib.length && !controller.aborted; i++) exchange.onResponseData(controller, mib);
  assert.ok(controller.aborted);
  assert.deepEqual(
    ends.map((e) => e?.kind),
    ['too_large'],
  );
  assert.deepEqual(sent, []);
});
