// The `binary_frames` extension on the server (docs/tunnel-extensions.md):
// granted only on top of `stream`, body chunks both ways as binary WebSocket
// messages (kind, seq, request_id, raw bytes), byte for byte, with a sidecar
// that speaks the frames by hand; binary messages are ignored without it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { HandSidecar } from '../helpers/hand-sidecar';
import { http } from '../helpers/http';
import { startTestNode } from '../helpers/node';

const PATH = '550e8400-e29b-41d4-a716-446655440000';
test('binary_frames is granted only with stream (and stream only with binary_body)', async (t) => {
  const node = await startTestNode(t);
  assert.deepEqual((await HandSidecar.join(t, node, PATH, ['binary_body', 'stream', 'binary_frames'])).granted, ['binary_body', 'stream', 'binary_frames']);
  assert.deepEqual((await HandSidecar.join(t, node, PATH, ['binary_body', 'binary_frames'])).granted, ['binary_body']);
  assert.deepEqual((await HandSidecar.join(t, node, PATH, ['stream', 'binary_frames'])).granted, []);
});

test('a streamed response and a streamed upload cross as binary chunks, byte for byte', async (t) => {
  const node = await startTestNode(t);
  const { sidecar } = await HandSidecar.join(t, node, PATH, ['binary_body', 'stream', 'binary_frames']);

  // Download: proxy_res_start, two binary chunks (one full), proxy_res_end.
  const body = randomBytes(64 * 1024 + 10);
  const download = http(node.port, 'GET', `/call/${PATH}/file`);
  const req = (await sidecar.next('proxy_req'))[4];
  const id = req.request_id as string;
  sidecar.send(['1', null, sidecar.topic, 'proxy_res_start', { request_id: id, status: 200, headers: { 'Content-Type': 'application/octet-stream' } }]);
  sidecar.sendChunk({ event: 'proxy_res_chunk', requestId: id, seq: 0, data: body.subarray(0, 64 * 1024) });
  sidecar.sendChunk({ event: 'proxy_res_chunk', requestId: id, seq: 1, data: body.subarray(64 * 1024) });
  sidecar.send(['1', null, sidecar.topic, 'proxy_res_end', { request_id: id }]);
  const got = await download;
  assert.equal(got.status, 200);
  assert.ok(got.bytes.equals(body), 'the downloaded bytes are the chunks');

  // Upload over STREAM_THRESHOLD_BYTES: proxy_req{streamed}, binary proxy_req_chunk…, proxy_req_end.
  const upload = randomBytes(200 * 1024);
  const posted = http(node.port, 'POST', `/call/${PATH}/upload`, { body: upload });
  const head = (await sidecar.next('proxy_req'))[4];
  assert.equal(head.streamed, true);
  await sidecar.next('proxy_req_end');
  const received = sidecar.chunks.filter((c) => c?.requestId === head.request_id);
  assert.deepEqual(received.map((c) => c?.seq), [0, 1, 2, 3]);
  assert.ok(Buffer.concat(received.map((c) => c!.data)).equals(upload), 'the uploaded bytes arrive as the chunks');
  sidecar.send(['1', null, sidecar.topic, 'proxy_res', { request_id: head.request_id, status: 201, headers: {}, body: '' }]);
  assert.equal((await posted).status, 201);
});

test('binary messages are ignored without binary_frames, and malformed ones with it; the socket stays', async (t) => {
  const node = await startTestNode(t);
  for (const extensions of [['binary_body', 'stream'], ['binary_body', 'stream', 'binary_frames']]) {
    const { sidecar } = await HandSidecar.join(t, node, PATH, extensions);
    const pending = http(node.port, 'GET', `/call/${PATH}/x`);
    const id = (await sidecar.next('proxy_req'))[4].request_id as string;
    sidecar.send(['1', null, sidecar.topic, 'proxy_res_start', { request_id: id, status: 200, headers: {} }]);
    sidecar.ws.send(Buffer.from([9, 9, 9]));
    sidecar.sendChunk({ event: 'proxy_res_chunk', requestId: id, seq: 0, data: Buffer.from('chunk') });
    sidecar.send(['1', null, sidecar.topic, 'proxy_res_chunk', { request_id: id, seq: extensions.includes('binary_frames') ? 1 : 0, data: Buffer.from('json').toString('base64') }]);
    sidecar.send(['1', null, sidecar.topic, 'proxy_res_end', { request_id: id }]);
    const got = await pending;
    assert.equal(got.body, extensions.includes('binary_frames') ? 'chunkjson' : 'json', extensions.join());
    sidecar.ws.close();
  }
});
