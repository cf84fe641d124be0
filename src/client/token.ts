// Token expiry, read without verifying (the server verifies; the client only
// needs to know when to ask for a new one, SPEC §3.5).
import { decodeBase64 } from './platform';

/** A token provider: called for the first connection, when a token is refused or near its expiry. */
export type TokenProvider = (context: TokenRequest) => Promise<string>;

export interface TokenRequest {
  /** `connect`: no usable token yet; `expiring`: the token is near its expiry (in-band refresh, or a reconnect); `rejected`: the server refused the last one (1008 or 4001). */
  reason: 'connect' | 'expiring' | 'rejected';
  /** The `device` option of the client, for a provider that mints per-device tokens. */
  device: string | undefined;
}

/** The `exp` claim (epoch seconds) of a JWT, or undefined when it has none or is not a JWT. */
export function tokenExpiry(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined || payload === '') return undefined;
  try {
    const base64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    // atob gives one character per byte: non-ASCII claims come out garbled, but
    // still as valid JSON, and `exp` is a number.
    const claims: unknown = JSON.parse(decodeBase64(base64 + '='.repeat((4 - (base64.length % 4)) % 4)));
    const exp = typeof claims === 'object' && claims !== null ? (claims as { exp?: unknown }).exp : undefined;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp : undefined;
  } catch (_notJwt) {
    // Not base64 or not JSON: an opaque token, which the client cannot schedule a refresh for.
    return undefined;
  }
}

/**
 * How long from `nowMs` to refresh a token expiring at `expS`: `marginMs`
 * before the expiry, but for a token with less than twice the margin left,
 * half-way to the expiry (a 30 s token is not refreshed in a tight loop).
 * Zero when it has expired already.
 */
export function refreshDelayMs(expS: number, nowMs: number, marginMs: number): number {
  const left = expS * 1000 - nowMs;
  if (left <= 0) return 0;
  return left - Math.min(marginMs, left / 2);
}

/** Whether a token is worth presenting again on a reconnect (it will not expire within `marginMs`). */
export function stillFresh(token: string, nowMs: number, marginMs: number): boolean {
  const exp = tokenExpiry(token);
  return exp === undefined || exp * 1000 - nowMs > marginMs;
}
