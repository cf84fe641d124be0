// The public side of a relayed request, driven without a network: a fake
// exchange feeds the body in pieces that do not fit the credit window, and a
// fake sidecar side records what it was sent and grants credit by hand.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/load';
import { createLogger } from '../../src/log/logger';
import { Metrics } from '../../src/metrics/metrics';
import type { HttpExchange, HttpReply, RequestInfo } from '../../src/transport/http-types';
import { WINDOW_BYTES, type RequestStream, type ResponseSink, type TunnelTarget } from '../../src/tunnel/exchange';
import { publicHttpRoute } from '../../src/tunnel/public-http';
import type { TunnelDirectory } from '../../src/tunnel/directory';
import { eventually } from '../helpers/eventually';

class FakeExchange implements HttpExchange {
  finished = false;
  paused = false;
  replies: HttpReply[] = [];
  private onChunk: ((chunk: Buffer, last: boolean) => void) | undefined;
  constructor(readonly request: RequestInfo) {}
  onAborted(): void {}
  onDrained(): void {}
  readBody(onChunk: (chunk: Buffer, last: boolean) => void): void {
    this.onChunk = onChunk;
  }
  pauseBody(): void {
    this.paused = true;
  }
  resumeBody(): void {
    this.paused = false;
  }
  writeHead(): void {}
  write(): boolean {
    return true;
  }
  end(): void {
    this.finished = true;
  }
  reply(reply: HttpReply): void {
    this.replies.push(reply);
    this.finished = true;
  }
  abort(): void {
    this.finished = true;
  }
  /** The client sends a piece of its body. */
  send(chunk: Buffer, last = false): void {
    this.onChunk?.(chunk, last);
  }
}

class RecordingStream implements RequestStream {
  received = 0;
  ended = false;
  sink: ResponseSink | undefined;
  body(chunk: Buffer): void {
    this.received += chunk.length;
  }
  bodyEnd(): void {
    this.ended = true;
  }
  credit(): void {}
  cancel(): void {}
}

test('the request body never goes past the sidecar side\'s credit, whatever the size of the pieces it arrives in', async () => {
  const stream = new RecordingStream();
  const target: TunnelTarget = {
    key: 'n/s',
    request: (_head, sink) => {
      stream.sink = sink;
      return stream;
    },
    checkWebSocket: () => Promise.reject(new Error('unused')),
    connectWebSocket: () => {
      throw new Error('unused');
    },
  };
  const directory = { pick: () => Promise.resolve(target), ended: () => undefined, forget: () => undefined } as unknown as TunnelDirectory;
  const config = loadConfig({ JWT_SECRET: 'x'.repeat(32), MAX_REQUEST_BYTES: String(10_000_000) });
  const route = publicHttpRoute({
    config,
    logger: createLogger('silent'),
    metrics: new Metrics({ node: 'test' }),
    directory,
    activity: { requests: 0 },
    forwarding: () => ({ peerIp: '127.0.0.1', viaTrustedProxy: false, proto: 'http' }),
    access: (request) => ({ ok: true, user: undefined, query: request.query }),
  });
  const size = 2_000_000;
  const exchange = new FakeExchange({ method: 'post', path: '/call/p/upload', query: '', headers: { 'content-length': String(size) }, peerAddress: '127.0.0.1' });
  route.serve(exchange);
  await eventually(() => assert.ok(stream.sink !== undefined));
  // 100,000-byte pieces: the window's edge falls inside one.
  for (let sent = 0; sent < size - 100_000; sent += 100_000) exchange.send(Buffer.alloc(100_000));
  assert.equal(stream.received, WINDOW_BYTES, 'exactly the window, not a piece past it');
  assert.equal(exchange.paused, true, 'reading pauses once a window more waits here');
  exchange.send(Buffer.alloc(100_000), true);
  stream.sink?.bodyCredit(70_000);
  assert.equal(stream.received, WINDOW_BYTES + 70_000);
  stream.sink?.bodyCredit(size);
  assert.equal(stream.received, size);
  assert.equal(stream.ended, true);
});
