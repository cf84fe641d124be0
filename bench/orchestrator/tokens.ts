// Tokens: Switchboard needs a JWT per connection. HS256 with a secret made for
// this run; one file of tokens per role, one token a line, read by loadgen.
import { randomBytes } from 'node:crypto';
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
}

export function writeTokens(idleCount: number): TokenFiles {
  mkdirSync(TOKENS, { recursive: true });
  const write = (file: string, users: string[]) => {
    const full = path.join(TOKENS, file);
    const lines = users.map((user) => jwt.sign({ sub: user, device_id: 'd' }, JWT_SECRET, { algorithm: 'HS256', expiresIn: '6h' }));
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
  };
}
