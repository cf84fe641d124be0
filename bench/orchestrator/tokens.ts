// Tokens: Switchboard needs a JWT per connection. HS256 with a secret made for
// this run; one file of tokens per role, one token a line, read by loadgen.
//
// The bench needs about 100,000 of them per run: signed with node:crypto
// directly (a few µs each) rather than jsonwebtoken.sign (about half a
// millisecond each here, most of a minute per run). The first token of every
// file is checked with jsonwebtoken.verify, pinned to HS256 as Switchboard
// verifies, so a token the server would refuse fails the bench at once.
import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import { TOKENS } from './paths';

export const JWT_SECRET = randomBytes(48).toString('base64');

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

export function writeTokens(idleCount: number): TokenFiles {
  mkdirSync(TOKENS, { recursive: true });
  const header = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const iat = Math.floor(Date.now() / 1000);
  const sign = (user: string) => {
    const body = `${header}.${base64url(JSON.stringify({ sub: user, device_id: 'd', iat, exp: iat + 6 * 3600 }))}`;
    return `${body}.${createHmac('sha256', JWT_SECRET).update(body).digest('base64url')}`;
  };
  const write = (file: string, users: string[]) => {
    const full = path.join(TOKENS, file);
    const lines = users.map(sign);
    const first = lines[0];
    if (first !== undefined) jwt.verify(first, JWT_SECRET, { algorithms: ['HS256'] });
    writeFileSync(full, `${lines.join('\n')}\n`);
    return full;
  };
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

function base64url(text: string): string {
  return Buffer.from(text).toString('base64url');
}
