// A tunnel sidecar written by hand for tests that need to say exactly what a
// sidecar sends and when: text frames parsed as they come, binary messages
// decoded as `binary_frames` chunks, nothing answered unless the test does.
import type { TestContext } from 'node:test';
import WebSocket from 'ws';
import { decodeBinaryChunk, encodeBinaryChunk, type ChunkEvent } from '../../src/protocol/tunnel-stream-frames';
import { eventually } from './eventually';

export type Frame = [string | null, string | null, string, string, Record<string, unknown>];

interface TokenSource {
  port: number;
  token(claims: Record<string, unknown>): string;
}

export class HandSidecar {
  readonly frames: Frame[] = [];
  readonly chunks: (ChunkEvent | undefined)[] = [];

  private constructor(
    readonly ws: WebSocket,
    readonly topic: string,
  ) {
    ws.on('message', (data: Buffer, isBinary) => {
      if (isBinary) this.chunks.push(decodeBinaryChunk(data));
      else this.frames.push(JSON.parse(data.toString('utf8')) as Frame);
    });
    ws.on('error', () => undefined);
  }

  /** Connects to `node`'s /telephone/websocket with a tunnel token for `pathId` and joins asking for `extensions`. */
  static async join(t: TestContext, node: TokenSource, pathId: string, extensions: string[]): Promise<{ sidecar: HandSidecar; granted: unknown }> {
    const token = node.token({ sub: `tunnel-${pathId}`, path_id: pathId, roles: ['tunnel'] });
    const ws = new WebSocket(`ws://127.0.0.1:${node.port}/telephone/websocket?token=${token}&vsn=2.0.0`);
    t.after(() => ws.terminate());
    const sidecar = new HandSidecar(ws, `telephone:${pathId}`);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    sidecar.send(['1', '1', sidecar.topic, 'phx_join', { extensions }]);
    const reply = await sidecar.next('phx_reply');
    return { sidecar, granted: (reply[4].response as Record<string, unknown>).extensions };
  }

  send(frame: Frame): void {
    this.ws.send(JSON.stringify(frame));
  }

  /** proxy_res with a UTF-8 body, as the Telephone baseline sends it. */
  respond(requestId: string, status: number, body: string): void {
    this.send(['1', null, this.topic, 'proxy_res', { request_id: requestId, status, headers: {}, body }]);
  }

  sendChunk(chunk: ChunkEvent): void {
    this.ws.send(encodeBinaryChunk(chunk));
  }

  /** The next frame with `event` (taken off the list), polling until it comes. */
  next(event: string): Promise<Frame> {
    return eventually(() => {
      const at = this.frames.findIndex((f) => f[3] === event);
      if (at === -1) throw new Error(`no ${event} yet; got ${this.frames.map((f) => f[3]).join(', ')}`);
      return this.frames.splice(at, 1)[0]!;
    });
  }
}
