// End to end: random frames over a real WebSocket to a node in this process.
// Every frame the decoder refuses is answered with an error frame of its code,
// in order, before the pong to the ping sent right after it; a frame the node
// acts on may close the socket, but cleanly (a close code, not 1006). Once it
// is over, the node still signals between two fresh clients.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeClientFrame } from '../../src/protocol/app-codec';
import { startTestNode } from '../helpers/node';
import { TestClient } from '../helpers/ws-client';
import { anyText, shapedObjectText } from './arbitraries';

const frames = anyText(shapedObjectText(['type', 'id', 'to', 'device', 'payload', 'room', 'users', 'token']));

/** No answer: the node must have closed the socket with a code of its own. */
function closedCleanly(client: TestClient, text: string): void {
  assert.ok(client.closed !== undefined && client.closed.code !== 1006, `no answer and no clean close after ${JSON.stringify(text.slice(0, 200))}`);
}

test('random frames to a running node: each refused one is answered with its error, and the node keeps serving', async (t) => {
  const node = await startTestNode(t, { RATE_LIMIT_POINTS: '1000000', RATE_LIMIT_STRIKES: '1000000' });
  let client = await TestClient.welcomed(node.port, node.token({ sub: 'fuzzer' }));
  t.after(() => client.close());
  let pings = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(frames, { minLength: 1, maxLength: 5 }), async (batch) => {
      if (client.closed !== undefined) client = await TestClient.welcomed(node.port, node.token({ sub: 'fuzzer' }));
      for (const text of batch) {
        const decoded = decodeClientFrame(text);
        client.ws.send(text);
        const id = `fuzz-ping-${++pings}`;
        client.send({ type: 'ping', id });
        if (!decoded.ok) {
          const error = await client.next('error', () => true, 3000).catch(() => undefined);
          if (error === undefined) return closedCleanly(client, text);
          assert.equal(error.code, decoded.error.code, text.slice(0, 200));
        }
        if ((await client.next('pong', (f) => f.id === id, 3000).catch(() => undefined)) === undefined) return closedCleanly(client, text);
      }
    }),
    { numRuns: 25 },
  );
  const a = await TestClient.welcomed(node.port, node.token({ sub: 'probe-a' }));
  const b = await TestClient.welcomed(node.port, node.token({ sub: 'probe-b' }));
  t.after(() => (a.close(), b.close()));
  assert.equal((await a.request({ type: 'message', to: 'probe-b', payload: 'still here?' })).type, 'ack');
  assert.equal((await b.next('message')).payload, 'still here?');
});
