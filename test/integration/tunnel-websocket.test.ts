// Public WebSockets relayed through a baseline sidecar to a real `ws` back end
// (TUNNEL-PROTOCOL.md §7): on one node, and with the sidecar on node A and the
// public client on node B over a real Redis.
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import WebSocket from 'ws';
import { startBackend } from '../helpers/backend';
import { BaselineSidecar, type BaselineSidecarOptions } from '../helpers/baseline-sidecar';
import { eventually } from '../helpers/eventually';
import type { TestNode } from '../helpers/node';
import { TUNNEL_TOPOLOGIES } from '../helpers/tunnel-topologies';

const PATH = 'ws-path.1';

const tunnelToken = (node: TestNode) => node.token({ sub: 'tunnel', jti: 'j1', path_id: PATH, roles: ['tunnel'], iat: Math.floor(Date.now() / 1000) });

/** A public client: every message and the close, recorded. */
class PublicClient {
  readonly messages: { data: Buffer; binary: boolean }[] = [];
  readonly pongs: string[] = [];
  closed: { code: number; reason: string } | undefined;
  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, binary) => this.messages.push({ data, binary }));
    ws.on('pong', (data: Buffer) => this.pongs.push(data.toString()));
    ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
    ws.on('error', () => undefined);
  }

  static open(t: TestContext, port: number, path: string, protocols?: string[]): Promise<PublicClient> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, protocols, { headers: { origin: 'http://example.com' } });
    t.after(() => ws.terminate());
    const client = new PublicClient(ws);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(client));
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode })));
    });
  }
}

for (const [name, start] of TUNNEL_TOPOLOGIES)
  describe(`tunnel WebSocket relay: ${name}`, () => {
    const setup = async (t: TestContext, options: Partial<BaselineSidecarOptions> = {}) => {
      const nodes = await start(t);
      const backend = await startBackend(t);
      const sidecar = await BaselineSidecar.connect(t, nodes.node.port, tunnelToken(nodes.node), PATH, { backend: backend.origin, ...options });
      return { ...nodes, backend, sidecar };
    };

    test('text, binary, ping and close codes both ways; the back end chooses the subprotocol', async (t) => {
      const { pub, backend } = await setup(t);
      const client = await PublicClient.open(t, pub.port, `/call/${PATH}/ws?room=1`, ['graphql-ws', 'wamp']);
      assert.equal(client.ws.protocol, 'graphql-ws');
      client.ws.send('hi');
      await eventually(() => assert.equal(client.messages[0]?.data.toString(), 'echo:hi'));
      assert.equal(client.messages[0]?.binary, false);
      const bytes = Buffer.from([0, 255, 1, 254, 128]);
      client.ws.send(bytes);
      await eventually(() => assert.deepEqual(client.messages[1]?.data, bytes));
      assert.equal(client.messages[1]?.binary, true);
      client.ws.ping('are you there');
      await eventually(() => assert.deepEqual(backend.wsPings, ['are you there']));
      assert.deepEqual(client.pongs, ['are you there']);
      // The back end closes with its own code and reason: the public client sees them.
      client.ws.send('close:4000');
      await eventually(() => assert.deepEqual(client.closed, { code: 4000, reason: 'backend bye' }));

      // The public client closes: the back end sees its code and reason.
      const second = await PublicClient.open(t, pub.port, `/call/${PATH}/ws`);
      second.ws.send('x');
      await eventually(() => assert.equal(second.messages.length, 1));
      second.ws.close(4100, 'client bye');
      await eventually(() => assert.ok(backend.wsCloses.some((c) => c.code === 4100 && c.reason === 'client bye'), JSON.stringify(backend.wsCloses)));
    });

    test('the upgrade is refused with the HTTP status of what went wrong', async (t) => {
      const { pub } = await start(t);
      await assert.rejects(PublicClient.open(t, pub.port, '/call/nobody/ws'), { status: 503 });
      await assert.rejects(PublicClient.open(t, pub.port, '/elsewhere'), { status: 404 });
      // Written with encoded slashes: a client's URL parser would resolve a plain `..` before sending.
      await assert.rejects(PublicClient.open(t, pub.port, `/call/${PATH}/a/..%2F..%2Fb`), { status: 400 });
    });

    test('a back end that takes no WebSocket there: 502', async (t) => {
      const { pub } = await setup(t, { refuseWebSockets: true });
      await assert.rejects(PublicClient.open(t, pub.port, `/call/${PATH}/ws`), { status: 502 });
    });

    test('frames before the back end connected are buffered up to 100; more close the client with 1009', async (t) => {
      const { pub, sidecar } = await setup(t, { holdWsConnect: true });
      const client = await PublicClient.open(t, pub.port, `/call/${PATH}/ws`);
      for (let i = 0; i < 101; i++) client.ws.send(`early ${i}`);
      await eventually(() => assert.equal(client.closed?.code, 1009));
      // The connect went out before the close (across nodes it may reach the sidecar a moment later).
      await eventually(() => assert.ok(sidecar.events.some(([, , , event]) => event === 'ws_connect')));
    });

    test('no ws_connected within 5 s: 1014; the sidecar vanishing: 1001', async (t) => {
      const { pub, node, backend, sidecar } = await setup(t, { holdWsConnect: true });
      const waiting = await PublicClient.open(t, pub.port, `/call/${PATH}/ws`);
      await eventually(() => assert.equal(waiting.closed?.code, 1014), 8000);
      sidecar.kill();

      const other = await BaselineSidecar.connect(t, node.port, tunnelToken(node), PATH, { backend: backend.origin });
      const client = await eventually(() => PublicClient.open(t, pub.port, `/call/${PATH}/ws`));
      client.ws.send('hello');
      await eventually(() => assert.equal(client.messages[0]?.data.toString(), 'echo:hello'));
      other.kill();
      await eventually(() => assert.equal(client.closed?.code, 1001));
    });
  });
