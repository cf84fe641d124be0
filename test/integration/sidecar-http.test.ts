// `switchboard tunnel`'s HTTP relay against a fake Telephone server and a real
// node:http back end: bodies byte for byte (sha256), whole and streamed
// responses, the credit window kept, streamed uploads with back-pressure,
// cancel, an unreachable back end and hop-by-hop headers.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { eventually } from '../helpers/eventually';
import { FakeTelephoneServer } from '../helpers/fake-telephone-server';
import { readBody, startHttpBackend, startSidecar } from '../helpers/sidecar';
import { INITIAL_CREDIT_BYTES } from '../../src/protocol/tunnel-stream-frames';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const EXT = { grant: ['binary_body', 'stream'] as const };

test('binary bodies both ways, byte for byte: GET and POST, whole (binary_body) and streamed', async (t) => {
  const server = await FakeTelephoneServer.start(t, EXT);
  const blob = randomBytes(300 * 1024);
  const backend = await startHttpBackend(t, (req, res) => {
    void readBody(req).then((body) => {
      if (req.url === '/blob') return res.end(blob);
      if (req.url === '/small') return res.end(blob.subarray(0, 1000));
      res.setHeader('x-request-sha256', sha256(body));
      res.end(body);
    });
  });
  await startSidecar(t, server, backend.url);
  const socket = await server.joined(0);

  const small = await socket.request({ method: 'GET', path: '/small' }).done();
  assert.equal(small.form, 'whole', 'a Content-Length of at most 64 KiB goes as one proxy_res');
  assert.equal(small.base64, true);
  assert.equal(sha256(small.body), sha256(blob.subarray(0, 1000)));

  const big = await socket.request({ method: 'GET', path: '/blob' }).done();
  assert.equal(big.form, 'streamed');
  assert.equal(sha256(big.body), sha256(blob));

  const upload = randomBytes(40 * 1024);
  const echoed = await socket.request({ method: 'POST', path: '/echo', headers: { 'content-type': 'application/octet-stream' }, body: upload }).done();
  assert.equal(echoed.headers.find(([n]) => n === 'X-Request-Sha256')?.[1], sha256(upload), 'the back end got the bytes');
  assert.equal(sha256(echoed.body), sha256(upload));
});

test('binary_body without stream: a large binary body comes back whole, base64', async (t) => {
  const server = await FakeTelephoneServer.start(t, { grant: ['binary_body'] });
  const blob = randomBytes(200 * 1024);
  const backend = await startHttpBackend(t, (req, res) => void readBody(req).then((body) => res.end(body)));
  await startSidecar(t, server, backend.url);
  const socket = await server.joined(0);
  const res = await socket.request({ method: 'PUT', path: '/', body: blob }).done();
  assert.equal(res.form, 'whole');
  assert.equal(res.base64, true);
  assert.equal(sha256(res.body), sha256(blob));
});

test('a 20 MiB streamed response never has more than the credit window outstanding', async (t) => {
  const server = await FakeTelephoneServer.start(t, EXT);
  const size = 20 * 1024 * 1024;
  const piece = randomBytes(256 * 1024);
  const expected = createHash('sha256');
  for (let sent = 0; sent < size; sent += piece.length) expected.update(piece);
  const backend = await startHttpBackend(t, (_req, res) => {
    // Chunked (no Content-Length): written as fast as the socket takes it.
    let sent = 0;
    const write = () => {
      while (sent < size) {
        sent += piece.length;
        if (!res.write(piece)) return void res.once('drain', write);
      }
      res.end();
    };
    write();
  });
  await startSidecar(t, server, backend.url);
  const socket = await server.joined(0);
  const exchange = socket.request({ method: 'GET', path: '/big' });

  // A slow public client: it takes 256 KiB only once the sidecar has used the whole window.
  let stalls = 0;
  while (exchange.response === undefined) {
    await eventually(() => {
      if (exchange.response !== undefined) return;
      assert.equal(exchange.received, exchange.granted, `waiting for the sidecar to fill the window (${exchange.received}/${exchange.granted})`);
    }, 10_000, 2);
    if (exchange.response !== undefined) break;
    stalls++;
    exchange.credit(256 * 1024);
  }
  const res = exchange.response;
  assert.equal(res.form, 'streamed');
  assert.equal(res.body.length, size);
  assert.equal(sha256(res.body), expected.digest('hex'));
  assert.deepEqual(exchange.violations, []);
  assert.equal(exchange.maxOutstanding, INITIAL_CREDIT_BYTES, 'the sidecar used the window exactly, never more');
  assert.ok(stalls >= (size - INITIAL_CREDIT_BYTES) / (256 * 1024) - 1, `${stalls} stalls: the sidecar waited for credit each time`);
});

test('a streamed upload reaches the back end byte for byte; a back end that reads nothing holds the server back', async (t) => {
  const server = await FakeTelephoneServer.start(t, EXT);
  // Several times what the loopback socket buffers took before the sidecar stopped granting (~4.5 MiB here).
  const upload = randomBytes(24 * 1024 * 1024 + 17);
  let resume: (() => void) | undefined;
  let readBeforeResume = 0;
  const backend = await startHttpBackend(t, (req, res) => {
    // A slow back end: reads nothing until told.
    req.pause();
    req.on('data', (c: Buffer) => (readBeforeResume += resume === undefined ? c.length : 0));
    resume = () => void readBody(req).then((body) => res.end(`${body.length} ${sha256(body)}`));
  });
  await startSidecar(t, server, backend.url);
  const socket = await server.joined(0);
  const exchange = socket.request({ method: 'POST', path: '/upload', headers: { 'content-length': String(upload.length), 'content-type': 'application/octet-stream' }, streamed: true });
  const uploading = exchange.upload(upload, 60_000);
  await eventually(() => assert.ok(resume !== undefined, 'the back end has not seen the request'));
  // Wait until the sidecar stops granting: the socket buffers are full and the back end reads nothing.
  let last = -1;
  let steady = 0;
  await eventually(
    () => {
      steady = exchange.uploadCredit === last ? steady + 1 : 0;
      last = exchange.uploadCredit;
      assert.ok(steady >= 5, `credit still growing: ${last}`);
    },
    30_000,
    50,
  );
  assert.ok(exchange.uploadCredit < upload.length, `the sidecar granted ${exchange.uploadCredit} of ${upload.length} bytes to a back end reading nothing`);
  assert.ok(exchange.uploadCredit > INITIAL_CREDIT_BYTES, 'the sidecar granted credit as the socket took bytes');
  const resumeFn = resume!;
  resumeFn();
  await uploading;
  const res = await exchange.done(30_000);
  assert.equal(res.body.toString(), `${upload.length} ${sha256(upload)}`);
  assert.equal(readBeforeResume, 0);
});

test('proxy_cancel aborts the back-end request; nothing more is sent for it', async (t) => {
  const server = await FakeTelephoneServer.start(t, EXT);
  let aborted = false;
  let seen = false;
  const backend = await startHttpBackend(t, (req, res) => {
    seen = true;
    res.on('close', () => (aborted = !res.writableFinished));
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: first\n\n');
  });
  await startSidecar(t, server, backend.url);
  const socket = await server.joined(0);
  const exchange = socket.request({ method: 'GET', path: '/events' });
  await eventually(() => assert.ok(seen && exchange.received > 0, 'no first event relayed yet'));
  exchange.cancel();
  await eventually(() => assert.ok(aborted, 'the back end did not see the request aborted'));
  const frames = socket.frames.length;
  // The server hears nothing more about it: the next request's answer comes with nothing in between.
  const next = socket.request({ method: 'GET', path: '/events' });
  await eventually(() => assert.ok(next.received > 0));
  assert.deepEqual(
    socket.frames.slice(frames).filter((f) => f.payload.request_id === exchange.requestId),
    [],
  );
  next.cancel();
});

test('an unreachable back end: 502 {"error":"backend_unreachable"}', async (t) => {
  const server = await FakeTelephoneServer.start(t, EXT);
  // A port that was free a moment ago: nothing listens there.
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  await startSidecar(t, server, `http://127.0.0.1:${port}`);
  const socket = await server.joined(0);
  const res = await socket.request({ method: 'GET', path: '/' }).done();
  assert.equal(res.status, 502);
  assert.deepEqual(JSON.parse(res.body.toString()), { error: 'backend_unreachable' });
});

test('hop-by-hop headers are dropped both ways; Set-Cookie lines stay apart; the --to path is a prefix', async (t) => {
  const server = await FakeTelephoneServer.start(t, EXT);
  let seen: Record<string, string | string[] | undefined> = {};
  let url = '';
  const backend = await startHttpBackend(t, (req, res) => {
    seen = req.headers;
    url = req.url ?? '';
    res.setHeader('Set-Cookie', ['a=1; Path=/', 'b=2; HttpOnly']);
    res.setHeader('Keep-Alive', 'timeout=5');
    res.setHeader('Connection', 'keep-alive, X-Hop');
    res.setHeader('X-Hop', 'gone');
    res.setHeader('X-Kept', 'yes');
    res.end('ok');
  });
  await startSidecar(t, server, `${backend.url}/base/`);
  const socket = await server.joined(0);
  const res = await socket
    .request({
      method: 'GET',
      path: '/p',
      query: 'q=1',
      headers: { connection: 'x-private', 'x-private': 'secret', te: 'trailers', upgrade: 'h2c', 'keep-alive': '1', 'x-forwarded-host': 'public.example', host: 'public.example', accept: 'text/plain' },
    })
    .done();
  assert.equal(url, '/base/p?q=1');
  for (const name of ['x-private', 'te', 'upgrade', 'keep-alive']) assert.equal(seen[name], undefined, `${name} reached the back end`);
  assert.equal(seen.host, `127.0.0.1:${backend.port}`, "the back end's own host");
  assert.equal(seen['x-forwarded-host'], 'public.example');
  assert.equal(seen.accept, 'text/plain');

  const names = res.headers.map(([n]) => n.toLowerCase());
  for (const name of ['keep-alive', 'connection', 'x-hop', 'transfer-encoding']) assert.ok(!names.includes(name), `${name} reached the server`);
  assert.ok(res.headers.some(([n, v]) => n === 'X-Kept' && v === 'yes'));
  const cookies = res.headers.filter(([n]) => n.toLowerCase() === 'set-cookie').map(([, v]) => v);
  assert.deepEqual(cookies, ['a=1; Path=/', 'b=2; HttpOnly']);
});
