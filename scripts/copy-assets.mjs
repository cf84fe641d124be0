// Puts next to the compiled code what it reads at run time but tsc does not
// write: the CLI's exec bit, the Lua scripts, and the browser bundle of the client SDK
// (dist/public/switchboard-client.js, global `Switchboard`), which the node
// serves beside the demo page. Bundled here, at build time, with esbuild: a
// node never builds anything while it runs.
import { chmodSync, cpSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// The CLI runs as `./dist/src/cli/index.js` too, through its shebang (as npm's installed bin does).
chmodSync(path.join(root, 'dist/src/cli/index.js'), 0o755);
for (const dir of ['src/presence/lua', 'src/bus/lua', 'src/tunnel/lua', 'src/resume/lua']) cpSync(path.join(root, dir), path.join(root, 'dist', dir), { recursive: true });

await build({
  entryPoints: [path.join(root, 'src/client/index.ts')],
  outfile: path.join(root, 'dist/public/switchboard-client.js'),
  bundle: true,
  // platform browser: a Node built-in imported by the SDK fails the build instead of being bundled.
  platform: 'browser',
  format: 'iife',
  globalName: 'Switchboard',
  target: 'es2020',
  legalComments: 'none',
  logLevel: 'warning',
});
