// HttpRoute.authorize (transport/uws-server.ts): a request is judged by its
// headers before any of its body is read. With a verdict that comes later (a
// JWKS fetch), a refused body is never read, and an allowed one reaches the
// handler whole, whether its bytes came before or after the verdict.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test, type TestContext } from 'node:test';
import { createLogger } from '../../src/log/logger';
import { errorReply, jsonReply, type HttpReply } from '../../src/transport/http-types';
import { UwsServer } from '../../src/transport/uws-server';
import { eventually } from '../helpers/eventually';
import { RawConnection } from '../helpers/raw-http';

const MiB = 1024 * 1024;
const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

type Decide = (refusal: HttpReply | undefined) => void;

/** A server whose one route waits for the test to decide each request; the handler answers with the body's hash. */
async function lateVerdictServer(t: TestContext): Promise<{ port: number; handled: () => number; nextVerdict: () => Promise<Decide> }> {
  const waiting: Decide[] = [];
  let handled = 0;
  const server = new UwsServer({ logger: createLogger('silent') }).route({
    method: 'post',
    pattern: '/in',
    maxBodyBytes: 4 * MiB,
    authorize: () => new Promise<HttpReply | undefined>((resolve) => waiting.push(resolve)),
    handle: (_request, body) => {
      handled++;
      return jsonReply(200, { bytes: body.length, sha: sha(body) });
    },
  });
  const port = await server.listen('127.0.0.1', 0);
  t.after(() => server.stopListening());
  const nextVerdict = () =>
    eventually(() => {
      const decide = waiting.shift();
      if (decide === undefined) throw new Error('the route was not asked for a verdict');
      return decide;
    });
  return { port, handled: () => handled, nextVerdict };
}

const postLines = (length: number) => ['POST /in HTTP/1.1', 'Host: 127.0.0.1', `Content-Length: ${length}`];

test('refused later: the reply arrives though the announced body never does, and the handler never runs', async (t) => {
  const server = await lateVerdictServer(t);
  const connection = await RawConnection.open(t, server.port);
  connection.send(postLines(3 * MiB), randomBytes(1024));
  (await server.nextVerdict())(errorReply('unauthorized', 'no'));
  const reply = await connection.response();
  assert.equal(reply.status, 401);
  assert.equal(server.handled(), 0);
});

test('allowed later, body sent after the verdict: it reaches the handler whole', async (t) => {
  const server = await lateVerdictServer(t);
  const body = randomBytes(2 * MiB);
  const connection = await RawConnection.open(t, server.port);
  connection.send(postLines(body.length));
  (await server.nextVerdict())(undefined);
  connection.write(body);
  const reply = await connection.response();
  assert.equal(reply.status, 200);
  assert.deepEqual(JSON.parse(reply.body), { bytes: body.length, sha: sha(body) });
});

test('allowed later, body sent with the head (it arrives before the verdict): it reaches the handler whole', async (t) => {
  const server = await lateVerdictServer(t);
  const body = randomBytes(2048);
  const connection = await RawConnection.open(t, server.port);
  connection.send(postLines(body.length), body);
  (await server.nextVerdict())(undefined);
  const reply = await connection.response();
  assert.equal(reply.status, 200);
  assert.deepEqual(JSON.parse(reply.body), { bytes: body.length, sha: sha(body) });
});

test('allowed later, but the announced body is over the limit: 413 without reading it', async (t) => {
  const server = await lateVerdictServer(t);
  const connection = await RawConnection.open(t, server.port);
  connection.send(postLines(5 * MiB), randomBytes(1024));
  (await server.nextVerdict())(undefined);
  assert.equal((await connection.response()).status, 413);
  assert.equal(server.handled(), 0);
});
