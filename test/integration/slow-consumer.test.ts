// SPEC §3.8 4010: a client that stops reading is closed once more than
// MAX_BUFFERED_BYTES are queued for it; the sender and the node carry on.
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { eventually } from '../helpers/eventually';
import { http } from '../helpers/http';
import { startTestNode } from '../helpers/node';
import { TestClient } from '../helpers/ws-client';

test('a reader that stalls is closed with 4010 slow_consumer; everyone else is served', async (t) => {
  const node = await startTestNode(t, { MAX_BUFFERED_BYTES: '65536', RATE_LIMIT_POINTS: '1000000' });
  const sender = await TestClient.welcomed(node.port, node.token({ sub: 'ann' }));
  const stalled = await TestClient.welcomed(node.port, node.token({ sub: 'slow' }));
  const healthy = await TestClient.welcomed(node.port, node.token({ sub: 'fast' }));
  t.after(() => [sender, stalled, healthy].forEach((c) => c.close()));

  // Stop reading: the kernel buffers fill, then the server's send buffer grows.
  (stalled.ws as unknown as { _socket: Socket })._socket.pause();
  const chunk = 'z'.repeat(16 * 1024);
  // Up to 64 MiB: far beyond loopback socket buffers plus MAX_BUFFERED_BYTES; stops as soon as the server gives up.
  for (let i = 0; i < 4096; i++) {
    sender.send({ type: 'message', to: 'slow', payload: chunk });
    if (i % 64 === 63) {
      const reply = await sender.request({ type: 'message', to: 'slow', payload: 'probe' });
      if (reply.type === 'error' && reply.code === 'peer_offline') break;
    }
  }
  await eventually(async () => {
    const metrics = await http(node.port, 'GET', '/metrics');
    assert.match(metrics.body, /signaling_slow_consumer_closes_total\{[^}]*\} 1/);
  });
  // The server dropped the socket: the user is offline for everyone.
  await eventually(async () => assert.equal((await sender.request({ type: 'message', to: 'slow', payload: 'x' })).code, 'peer_offline'));

  // The stalled client, once it reads again, finds the close code after what was already on the wire.
  (stalled.ws as unknown as { _socket: Socket })._socket.resume();
  const closed = await stalled.waitClosed(20_000);
  assert.deepEqual(closed, { code: 4010, reason: 'slow_consumer' });

  assert.equal((await sender.request({ type: 'message', to: 'fast', payload: 'still here' })).type, 'ack');
  assert.equal((await healthy.next('message')).payload, 'still here');
});
