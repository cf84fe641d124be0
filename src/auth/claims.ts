// What a verified token grants (SPEC §2). Produced only by the verifier; the
// rest of the code never sees a raw JWT payload.

export const ROLES = ['admin', 'tunnel'] as const;
export type Role = (typeof ROLES)[number];

export interface Claims {
  /** `sub`, or `user_id` when `sub` is absent. */
  user: string;
  /** `device_id`; absent means the server picks a random id per connection. */
  device?: string;
  /** Expiry, epoch seconds; absent only when JWT_REQUIRE_EXP=false. */
  exp?: number;
  /** Known roles only; unknown role strings are ignored. */
  roles: ReadonlySet<Role>;
  /** Room patterns (`*` wildcard at the end); undefined means any room. */
  rooms?: readonly string[];
  /** The tunnel path a `tunnel` token may serve. */
  pathId?: string;
  /**
   * Tunnel patterns (`*` wildcard at the end) whose public side (/call/<path_id>) the user may use
   * when TUNNEL_PUBLIC_AUTH=required. Undefined means none (unlike `rooms`): a token minted before
   * tunnels had access control must not open every tunnel.
   */
  tunnels?: readonly string[];
}

export type AuthFailure = 'token_missing' | 'token_invalid' | 'token_expired';

export type VerifyResult = { ok: true; claims: Claims } | { ok: false; reason: Exclude<AuthFailure, 'token_missing'>; detail: string };

/** Verifies app, admin and tunnel tokens. Implementations pin algorithms to the key type. */
export interface TokenVerifier {
  /** A result now when the key is at hand (a static key), a promise when it must be fetched (JWKS). Never rejects. */
  verify(token: string): VerifyResult | Promise<VerifyResult>;
  close?(): void;
}

/** Whether `room` matches one of the token's patterns; no `rooms` claim means any room. */
export function roomAllowed(patterns: readonly string[] | undefined, room: string): boolean {
  return patterns === undefined || matchesPattern(patterns, room);
}

/** Whether the token opens the public side of tunnel `pathId`: `admin` any, else its `tunnels` patterns; no claim means none. */
export function tunnelAllowed(claims: Pick<Claims, 'roles' | 'tunnels'>, pathId: string): boolean {
  return claims.roles.has('admin') || (claims.tunnels !== undefined && matchesPattern(claims.tunnels, pathId));
}

/** Whether `name` matches one of `patterns` (exact, or prefix before a trailing `*`). */
function matchesPattern(patterns: readonly string[], name: string): boolean {
  for (const pattern of patterns) {
    if (pattern.endsWith('*') ? name.startsWith(pattern.slice(0, -1)) : name === pattern) return true;
  }
  return false;
}
