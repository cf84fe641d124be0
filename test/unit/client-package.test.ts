// The SDK as users get it: the package export `switchboard/client` (CommonJS
// and ESM, with declarations), and the browser bundle, which must run with
// nothing but browser globals (no require, no Node built-ins).
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';
import vm from 'node:vm';
import { REPO_ROOT } from '../helpers/process';

test('switchboard/client resolves through the exports map, with its declarations', async () => {
  const load = createRequire(__filename);
  const cjs = load('switchboard/client') as typeof import('../../src/client/index');
  assert.equal(typeof cjs.SwitchboardClient, 'function');
  assert.equal(load.resolve('switchboard/client'), path.join(REPO_ROOT, 'dist/src/client/index.js'));
  const esm = (await import('switchboard/client')) as typeof import('../../src/client/index');
  assert.equal(esm.SwitchboardClient, cjs.SwitchboardClient);
  assert.ok(existsSync(path.join(REPO_ROOT, 'dist/src/client/index.d.ts')));
});

test('the browser bundle defines the global Switchboard and needs only browser globals', () => {
  const source = readFileSync(path.join(REPO_ROOT, 'dist/public/switchboard-client.js'), 'utf8');
  const opened: string[] = [];
  class BrowserWebSocket {
    readyState = 0;
    onopen = null;
    onmessage = null;
    onclose = null;
    onerror = null;
    constructor(url: string) {
      opened.push(url);
    }
    send(): void {}
    close(): void {}
  }
  // A context with what a page has (and no require, process or Buffer).
  const page = vm.createContext({ WebSocket: BrowserWebSocket, setTimeout, clearTimeout, atob, queueMicrotask, URL });
  vm.runInContext(source, page);
  const client = vm.runInContext(`
    const client = new Switchboard.SwitchboardClient({ url: 'ws://node.test/ws', token: 'a b' });
    client.connect().catch(() => undefined);
    client;`, page) as { state: string; close(): void };
  assert.equal(client.state, 'connecting');
  return new Promise<void>((resolve) =>
    setImmediate(() => {
      assert.deepEqual(opened, ['ws://node.test/ws?token=a%20b'], 'the global WebSocket, by default');
      client.close();
      resolve();
    }),
  );
});
