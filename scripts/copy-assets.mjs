// Copies the non-TypeScript files the compiled code reads at run time (Lua
// scripts) next to it in dist/.
import { cpSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
cpSync(path.join(root, 'src/presence/lua'), path.join(root, 'dist/src/presence/lua'), { recursive: true });
