// The SDK's pure parts: backoff bounds and the reconnect policy per close code.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Backoff, backoffOptions, DEFAULT_BACKOFF } from '../../src/client/backoff';
import { closeAction } from '../../src/client/close-policy';
import { CLOSE } from '../../src/errors/codes';

describe('backoff', () => {
  test('without jitter: initialMs, then times factor, capped at maxMs', () => {
    const backoff = new Backoff(backoffOptions({ initialMs: 100, maxMs: 1000, factor: 2, jitter: 0 }));
    assert.deepEqual(Array.from({ length: 7 }, () => backoff.next()), [100, 200, 400, 800, 1000, 1000, 1000]);
  });

  test('with jitter: every delay lies in [base * (1 - jitter), base], never above maxMs', () => {
    const randoms = [0, 0.999999, 0.5, 0.25, 0, 0.999999, 0.7, 0.1];
    let i = 0;
    const backoff = new Backoff(backoffOptions({ initialMs: 100, maxMs: 1000, factor: 3, jitter: 0.4 }), () => randoms[i++ % randoms.length] ?? 0);
    const bases = [100, 300, 900, 1000, 1000, 1000, 1000, 1000];
    for (const [n, base] of bases.entries()) {
      const delay = backoff.next();
      assert.ok(delay >= base * 0.6 && delay <= base, `attempt ${n}: ${delay} outside [${base * 0.6}, ${base}]`);
    }
    const extremes = new Backoff(backoffOptions({ initialMs: 100, maxMs: 1000, factor: 2, jitter: 1 }), () => 0.999999);
    assert.ok(extremes.next() >= 0, 'full jitter may go down to (almost) zero, not below');
  });

  test('with Math.random: many draws stay within the bounds', () => {
    const options = backoffOptions({ initialMs: 50, maxMs: 800, factor: 2, jitter: 0.5 });
    for (let run = 0; run < 200; run++) {
      const backoff = new Backoff(options);
      for (let n = 0; n < 8; n++) {
        const base = Math.min(800, 50 * 2 ** n);
        const delay = backoff.next();
        assert.ok(delay >= base / 2 && delay <= base && delay <= 800, `${delay} for base ${base}`);
      }
    }
  });

  test('reset starts again from initialMs', () => {
    const backoff = new Backoff(backoffOptions({ initialMs: 100, maxMs: 1000, factor: 2, jitter: 0 }));
    backoff.next();
    backoff.next();
    assert.equal(backoff.next(), 400);
    backoff.reset();
    assert.equal(backoff.next(), 100);
  });

  test('defaults, and invalid options refused', () => {
    assert.deepEqual(backoffOptions(), DEFAULT_BACKOFF);
    for (const bad of [{ initialMs: 0 }, { maxMs: 1, initialMs: 2 }, { factor: 0.5 }, { jitter: 1.5 }, { jitter: -0.1 }, { resetAfterMs: -1 }, { initialMs: Number.NaN }])
      assert.throws(() => backoffOptions(bad), RangeError, JSON.stringify(bad));
  });
});

describe('reconnect policy per close code (SPEC §3.8, §3.9)', () => {
  test('each close code of the server maps to its action', () => {
    assert.deepEqual(closeAction(CLOSE.replaced.code), { kind: 'stop' }, '4009: never reconnect');
    assert.deepEqual(closeAction(1008), { kind: 'reconnect', wait: 'backoff', newToken: true, resume: false }, '1008: a new token, with backoff, a new session');
    assert.deepEqual(closeAction(4001), { kind: 'reconnect', wait: 'soon', newToken: true, resume: true }, '4001: a new token, soon, same session');
    assert.deepEqual(closeAction(1012), { kind: 'reconnect', wait: 'drain', newToken: false, resume: true }, '1012: after the drain hint, resumed');
    assert.deepEqual(closeAction(4008), { kind: 'reconnect', wait: 'backoff', newToken: false, resume: false }, '4008: backoff, a new session');
    for (const code of [4010, 1009, 1001, 1006, 1011, 4000, 4999])
      assert.deepEqual(closeAction(code), { kind: 'reconnect', wait: 'backoff', newToken: false, resume: true }, `${code}: backoff, resumed`);
  });
});
