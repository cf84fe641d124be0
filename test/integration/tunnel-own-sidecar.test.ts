// Public requests and WebSockets through Switchboard's own sidecar
// (`switchboard tunnel`, with binary_body and stream granted) to a real back
// end: bodies byte for byte, Set-Cookie lines, cancel on hang-up; on one node
// and with the sidecar on node A and the public client on node B over Redis.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { describe, test, type TestContext } from 'node:test';
import WebSocket from 'ws';
import { pattern, startBackend } from '../helpers/backend';
import { eventually } from '../helpers/eventually';
import { http } from '../helpers/http';
import { startTestNode, type TestNode } from '../helpers/node';
import { TUNNEL_TOPOLOGIES } from '../helpers/tunnel-topologies';
import { startOwnSidecar } from '../helpers/own-sidecar';

const PATH = 'own-sidecar';

const tunnelToken = (node: TestNode) => node.token({ sub: 'tunnel', jti: 'j1', path_id: PATH, roles: ['tunnel'], iat: Math.floor(Date.now() / 1000) });

/** A request whose body is binary and whose answer is read as bytes. */
function binaryRequest(port: number, method: string, path: string, body?: Buffer): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { connection: 'close' };
    if (body !== undefined) headers['content-length'] = String(body.length);
    const req = httpRequest({ host: '127.0.0.1', port, method, path, agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

for (const [name, start] of TUNNEL_TOPOLOGIES)
  describe(`own sidecar: ${name}`, () => {
    const setup = async (t: TestContext) => {
      const nodes = await start(t);
      const backend = await startBackend(t);
      const sidecar = await startOwnSidecar(t, nodes.node.port, tunnelToken(nodes.node), backend.origin);
      return { ...nodes, backend, sidecar };
    };

    test('binary bodies both ways, byte for byte, small and streamed; every method; Set-Cookie lines kept apart', async (t) => {
      const { pub } = await setup(t);
      for (const size of [1000, 300_000, 3_000_000]) {
        const body = randomBytes(size);
        const res = await binaryRequest(pub.port, 'POST', `/call/${PATH}/upload`, body);
        assert.equal(res.status, 200, res.body.toString());
        assert.deepEqual(JSON.parse(res.body.toString()), { bytes: size, sha256: sha256(body) });
      }
      for (const size of [0, 1000, 70_000, 5_000_000]) {
        const res = await binaryRequest(pub.port, 'GET', `/call/${PATH}/bytes?n=${size}`);
        assert.equal(res.status, 200);
        assert.equal(sha256(res.body), sha256(pattern(size)), `${size} bytes`);
        assert.equal(res.headers['content-length'], String(size));
      }
      for (const method of ['PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
        const res = await binaryRequest(pub.port, method, `/call/${PATH}/echo?q=1`, Buffer.from('x'));
        assert.equal((JSON.parse(res.body.toString()) as { method: string; query: string }).method, method);
      }
      const head = await binaryRequest(pub.port, 'HEAD', `/call/${PATH}/bytes?n=5000`);
      assert.deepEqual([head.status, head.body.length], [200, 0]);
      const cookies = await http(pub.port, 'GET', `/call/${PATH}/cookies`);
      assert.deepEqual(cookies.headers['set-cookie'], ['a=1; Path=/', 'b=2; Path=/']);
    });

    test('a client that stops reading for a while gets every byte once it reads again (known length and chunked)', async (t) => {
      const { pub } = await setup(t);
      for (const path of [`/call/${PATH}/stream?n=${8 * 1024 * 1024}`, `/call/${PATH}/stream?n=${8 * 1024 * 1024}&chunked`]) {
        const body = await new Promise<Buffer>((resolve, reject) => {
          const req = httpRequest({ host: '127.0.0.1', port: pub.port, path, agent: false }, (res) => {
            res.pause();
            setTimeout(() => res.resume(), 300);
            const chunks: Buffer[] = [];
            res.on('data', (chunk: Buffer) => chunks.push(chunk));
            res.on('end', () => resolve(Buffer.concat(chunks)));
            res.on('error', reject);
          });
          req.on('error', reject);
          req.end();
        });
        assert.equal(sha256(body), sha256(pattern(8 * 1024 * 1024)), path);
      }
    });

    test('an upload in pieces that do not fit the credit window, to a back end that reads late, arrives whole', async (t) => {
      const { pub } = await setup(t);
      const body = randomBytes(2_000_000);
      const result = await new Promise<{ bytes: number; sha256: string }>((resolve, reject) => {
        const req = httpRequest(
          { host: '127.0.0.1', port: pub.port, method: 'POST', path: `/call/${PATH}/upload?pause=300`, agent: false, headers: { 'content-length': String(body.length) } },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (chunk: Buffer) => chunks.push(chunk));
            res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString()) as { bytes: number; sha256: string }));
          },
        );
        req.on('error', reject);
        // 100,000-byte writes: the relay's 64 KiB pieces then end off the window's edge.
        for (let at = 0; at < body.length; at += 100_000) req.write(body.subarray(at, at + 100_000));
        req.end();
      });
      assert.deepEqual(result, { bytes: body.length, sha256: sha256(body) });
    });

    test('the public client hanging up cancels the request at the back end', async (t) => {
      const { pub, backend } = await setup(t);
      const req = httpRequest({ host: '127.0.0.1', port: pub.port, method: 'GET', path: `/call/${PATH}/hang`, agent: false });
      req.on('error', () => undefined);
      req.end();
      await eventually(() => assert.equal(backend.hanging, 1));
      req.destroy();
      await eventually(() => assert.equal(backend.aborted, 1));
    });

    test('WebSockets: text, binary, close codes through the own sidecar', async (t) => {
      const { pub, backend } = await setup(t);
      const ws = new WebSocket(`ws://127.0.0.1:${pub.port}/call/${PATH}/ws`, ['chat']);
      t.after(() => ws.terminate());
      const got: string[] = [];
      let closed: number | undefined;
      ws.on('message', (data: Buffer, binary) => got.push(binary ? `bin:${data.toString('hex')}` : data.toString()));
      ws.on('close', (code) => (closed = code));
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      assert.equal(ws.protocol, 'chat');
      ws.send('hi');
      ws.send(Buffer.from([1, 2, 255]));
      await eventually(() => assert.deepEqual(got, ['echo:hi', 'bin:0102ff']));
      ws.send('close:4321');
      await eventually(() => assert.equal(closed, 4321));
      assert.ok(backend.wsCloses.length >= 1);
    });
  });

  test('a response over MAX_RESPONSE_BYTES: 502 response_too_large when its length is declared, a cut connection when it is not', async (t) => {
    const limited = await startTestNode(t, { MAX_RESPONSE_BYTES: '1000000' });
    const backend = await startBackend(t);
    await startOwnSidecar(t, limited.port, tunnelToken(limited), backend.origin);
    const declared = await http(limited.port, 'GET', `/call/${PATH}/stream?n=2000000`);
    assert.deepEqual([declared.status, (declared.json() as { error: string }).error], [502, 'response_too_large']);
    const fits = await binaryRequest(limited.port, 'GET', `/call/${PATH}/stream?n=900000`);
    assert.equal(sha256(fits.body), sha256(pattern(900_000)));
    // Undeclared: the head is out before the limit is passed, so the connection is cut (the client sees an aborted body, never a complete one).
    await assert.rejects(binaryRequest(limited.port, 'GET', `/call/${PATH}/stream?n=2000000&chunked`));
  });
