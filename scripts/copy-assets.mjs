// Copies the non-TypeScript files the compiled code reads at run time (Lua
// scripts) next to it in dist/.
import { cpSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
for (const dir of ['src/presence/lua', 'src/bus/lua', 'src/tunnel/lua']) cpSync(path.join(root, dir), path.join(root, 'dist', dir), { recursive: true });
