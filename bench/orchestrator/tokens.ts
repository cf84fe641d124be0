// Tokens: Switchboard needs a JWT per connection. HS256 with a secret made for
// this run; one file of tokens per role, one token a line, read by loadgen.
import { createSecretKey, randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import { TOKENS } from './paths';

export const JWT_SECRET = randomBytes(48).toString('base64');
// Signed with a KeyObject (the server's own key, src/auth/keys.ts): with the string secret
// jsonwebtoken rebuilds the key for every token (~0.6 ms each here, against ~25 µs).
const SIGNING_KEY = createSecretKey(Buffer.from(JWT_SECRET, 'utf8'));

export interface TokenFiles {
  recv: string;
  send: string;
  members: string;
  pub: string;
  idle: string;
  /** W5: a token per connect (no token is presented twice in a run, so no cache could help). */
  connect: string;
  /** W7's callers (c<i>) and callees (e<i>). */
  callers: string;
  callees: string;
}

/** W5's connects in one run (warm-up and measured window) stay below this many at ≈ 25,000 connects/s. */
const CONNECT_TOKENS = 80_000;

/** Writes one token per user (extra claims on each, such as a `jti`) to TOKENS/file; returns its path. */
function writeTokenFile(file: string, users: string[], claims: () => Record<string, string> = () => ({})): string {
  mkdirSync(TOKENS, { recursive: true });
  const full = path.join(TOKENS, file);
  const lines = users.map((user) => jwt.sign({ sub: user, device_id: 'd', ...claims() }, SIGNING_KEY, { algorithm: 'HS256', expiresIn: '6h' }));
  writeFileSync(full, `${lines.join('\n')}\n`);
  return full;
}

export function writeTokens(idleCount: number): TokenFiles {
  const write = (file: string, users: string[]) => writeTokenFile(file, users);
  const range = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  return {
    recv: write('recv.txt', range('r', 1000)),
    send: write('send.txt', range('s', 1000)),
    members: write('members.txt', range('m', 1000)),
    pub: write('pub.txt', ['pub']),
    idle: write('idle.txt', range('i', idleCount)),
    connect: write('connect.txt', range('k', CONNECT_TOKENS)),
    callers: write('callers.txt', range('c', 1000)),
    callees: write('callees.txt', range('e', 1000)),
  };
}

/**
 * W8's clients (users w0…): the tokens they first connect with, and fresh ones for the same
 * users that they present on reconnecting after the drain (other strings: a `jti` each, as a
 * token provider asked again would mint). Written only when W8 runs.
 */
export function writeStormTokens(count: number): { first: string; reconnect: string } {
  const users = Array.from({ length: count }, (_, i) => `w${i}`);
  return {
    first: writeTokenFile('storm.txt', users),
    reconnect: writeTokenFile('storm-reconnect.txt', users, () => ({ jti: randomUUID() })),
  };
}
