// A ClientSession driven without a network (the Connection interface is
// all it writes to): a failure while handling one frame answers that frame
// with an error and leaves the session, and the process, running.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Claims } from '../../src/auth/claims';
import { loadConfig } from '../../src/config/load';
import type { Close } from '../../src/errors/codes';
import { createLogger } from '../../src/log/logger';
import { Metrics } from '../../src/metrics/metrics';
import { MemoryRateLimiter } from '../../src/ratelimit/rate-limiter';
import { AwayKeeper } from '../../src/resume/away-keeper';
import { MemoryResumeStore } from '../../src/resume/memory-resume-store';
import type { Router } from '../../src/routing/router';
import { ClientSession } from '../../src/session/client-session';
import { ExpiryWheel } from '../../src/session/expiry-wheel';
import type { Connection } from '../../src/transport/connection';
import { TEST_SECRET } from '../helpers/node';

class RecordingConnection implements Connection {
  readonly frames: Record<string, unknown>[] = [];
  closed = false;
  send(text: string): void {
    this.frames.push(JSON.parse(text) as Record<string, unknown>);
  }
  close(_close: Close): void {
    this.closed = true;
  }
}

test('a frame whose handling throws is answered with an error; the session keeps working', () => {
  const conn = new RecordingConnection();
  const router = {
    attach: () => undefined,
    detach: () => undefined,
    sendDirect: () => {
      throw new Error('router bug');
    },
  } as unknown as Router;
  const limiter = new MemoryRateLimiter({ points: 100, durationS: 1 });
  const claims: Claims = { user: 'ann', device: 'd1', roles: new Set() };
  const metrics = new Metrics({ node: 'n1' });
  const resumeStore = new MemoryResumeStore({ node: 'n1', windowMs: 60_000, limit: 10 });
  const session = new ClientSession(
    {
      config: loadConfig({ JWT_SECRET: TEST_SECRET }),
      router,
      limiter,
      verifier: { verify: () => ({ ok: false, reason: 'token_invalid', detail: 'unused' }) },
      metrics,
      logger: createLogger('silent'),
      sessions: new Set(),
      serving: new Map(),
      limits: { release: () => undefined },
      expiries: new ExpiryWheel(),
      resumeStore,
      keeper: new AwayKeeper(resumeStore, metrics, createLogger('silent'), true),
    },
    conn,
    claims,
    '',
  );
  session.open();
  const send = (frame: object) => session.onMessage(new TextEncoder().encode(JSON.stringify(frame)).buffer, false);

  send({ type: 'message', to: 'bob', payload: 1, id: 'm1' });
  send({ type: 'ping', id: 'p1' });

  assert.equal(conn.closed, false);
  const [welcome, failed, pong] = conn.frames;
  assert.equal(welcome?.type, 'welcome');
  assert.deepEqual({ type: failed?.type, code: failed?.code, id: failed?.id }, { type: 'error', code: 'unavailable', id: 'm1' });
  assert.deepEqual({ type: pong?.type, id: pong?.id }, { type: 'pong', id: 'p1' });
  session.onClose(1000);
  limiter.close();
});
