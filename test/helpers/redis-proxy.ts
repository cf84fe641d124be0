// A TCP proxy between a node and a real redis-server that a test controls:
// it can hold every reply (commands still reach Redis and run; their answers
// wait) or cut the network (every connection dropped, new ones refused). The
// races of a flaky network — a client that vanishes while its registration
// waits for Redis, a Redis that drops mid-join — are then reproduced on
// purpose instead of hoped for. Loopback only; closed in teardown.
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { TestContext } from 'node:test';

interface Pair {
  client: Socket;
  upstream: Socket;
  held: Buffer[];
}

export class RedisProxy {
  private readonly pairs = new Set<Pair>();
  private holding = false;
  private isCut = false;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly targetPort: number,
  ) {
    server.on('connection', (client) => this.accept(client));
  }

  /** A proxy on a free loopback port in front of redis-server on `targetPort`. */
  static async start(t: TestContext, targetPort: number): Promise<RedisProxy> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const proxy = new RedisProxy(server, typeof address === 'object' && address !== null ? address.port : 0, targetPort);
    t.after(() => proxy.close());
    return proxy;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Replies from Redis wait (in order) until `releaseReplies`. */
  holdReplies(): void {
    this.holding = true;
  }

  releaseReplies(): void {
    this.holding = false;
    for (const pair of this.pairs) for (const chunk of pair.held.splice(0)) pair.client.write(chunk);
  }

  /** A network partition: every connection is dropped and new ones are refused until `heal`. */
  cut(): void {
    this.isCut = true;
    for (const pair of this.pairs) this.drop(pair);
  }

  heal(): void {
    this.isCut = false;
  }

  private accept(client: Socket): void {
    if (this.isCut) return void client.destroy();
    const upstream = connect(this.targetPort, '127.0.0.1');
    const pair: Pair = { client, upstream, held: [] };
    this.pairs.add(pair);
    client.on('data', (chunk) => upstream.write(chunk));
    upstream.on('data', (chunk) => (this.holding ? pair.held.push(chunk) : client.write(chunk)));
    for (const socket of [client, upstream]) {
      socket.on('error', () => this.drop(pair));
      socket.on('close', () => this.drop(pair));
    }
  }

  private drop(pair: Pair): void {
    this.pairs.delete(pair);
    pair.client.destroy();
    pair.upstream.destroy();
  }

  private async close(): Promise<void> {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
