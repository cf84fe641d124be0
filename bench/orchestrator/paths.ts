// Where the orchestrator's inputs and outputs live, and the address every
// server and the load generator use.
import path from 'node:path';

// Compiled to dist/bench/orchestrator/paths.js: three levels up is the repository.
export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const OUT = path.join(ROOT, 'bench', 'out');
export const LOADGEN = path.join(OUT, 'loadgen');
export const TOKENS = path.join(OUT, 'tokens');
export const SWITCHBOARD_CLI = path.join(ROOT, 'dist', 'src', 'cli', 'index.js');
export const RAW_RELAY = path.join(ROOT, 'bench', 'baseline', 'raw-relay.mjs');
export const HOST = '127.0.0.1';
