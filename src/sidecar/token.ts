// What the sidecar reads from its own token, pure. Like the Telephone client
// it parses the JWT's payload without verifying it (it holds no key; the
// server verifies): the path_id names the channel to join, iat and exp say
// when to refresh. The token itself is never logged.
import { PATH_ID_PATTERN } from '../protocol/names';

export interface TokenFacts {
  pathId: string;
  /** Unix seconds, when the token has them. */
  iat: number | undefined;
  exp: number | undefined;
}

/** A token issued up to this far in the future is accepted: clocks of the signer and the sidecar differ a little. */
const CLOCK_SKEW_S = 60;

export type TokenRead = { ok: true; facts: TokenFacts } | { ok: false; problem: string };

export function readTunnelToken(token: string, nowS: number): TokenRead {
  const parts = token.split('.');
  const encoded = parts[1];
  if (parts.length !== 3 || encoded === undefined || encoded === '') return { ok: false, problem: 'is not a JWT (three dot-separated parts)' };
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, problem: "has a payload that is not JSON" };
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return { ok: false, problem: 'has a payload that is not a JSON object' };
  const { path_id: pathId, iat, exp } = payload as Record<string, unknown>;
  if (typeof pathId !== 'string' || !PATH_ID_PATTERN.test(pathId)) return { ok: false, problem: 'has no path_id of 1-128 chars [A-Za-z0-9_.-] (mint one with `switchboard token --tunnel PATH_ID`)' };
  const seconds = (value: unknown) => (Number.isSafeInteger(value) ? (value as number) : undefined);
  const facts: TokenFacts = { pathId, iat: seconds(iat), exp: seconds(exp) };
  if (facts.iat !== undefined && facts.iat > nowS + CLOCK_SKEW_S) return { ok: false, problem: 'was issued in the future (iat): check the clocks' };
  return { ok: true, facts };
}

/**
 * Milliseconds until the token should be refreshed: at half its lifetime (exp - iat), as the
 * Telephone client does, counted from what the server says is left (`expires_in`, its clock) or
 * else from exp by this machine's clock. Undefined for a token that does not expire.
 */
export function refreshDelayMs(facts: TokenFacts, expiresInS: number | undefined, nowMs: number): number | undefined {
  if (facts.exp === undefined) return undefined;
  const leftS = expiresInS ?? facts.exp - nowMs / 1000;
  const lifetimeS = facts.iat === undefined ? leftS : facts.exp - facts.iat;
  return Math.max(0, Math.round((leftS - lifetimeS / 2) * 1000));
}
