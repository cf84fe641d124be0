// Mints app, admin and tunnel tokens with the node's own key: `switchboard
// token`, the dev-mode tokens, and tunnel token refresh (TUNNEL-PROTOCOL §5,
// §9). Every token gets a fresh `jti`, `iat` = now and `exp` = now + ttl, and
// the configured `iss`/`aud`, so this node's verifier accepts what it signs.
import jwt from 'jsonwebtoken';
import { randomUUID, sign as cryptoSign } from 'node:crypto';
import type { Claims, Role } from './claims';
import { signingKeyFromConfig, type SigningKey } from './keys';
import { PATH_ID_PATTERN, PATH_ID_RULE } from '../protocol/names';
import { isRoomPattern, isTunnelPattern } from './jwt-verifier';
import type { Config } from '../config/load';
import { NAME_PATTERN, NAME_RULE } from '../protocol/names';

export interface TokenSignerOptions {
  key: SigningKey;
  issuer?: string | undefined;
  audience?: string | undefined;
}

export interface AppTokenInput {
  user: string;
  device?: string | undefined;
  roles?: readonly Role[] | undefined;
  /** Room patterns; undefined means any room. */
  rooms?: readonly string[] | undefined;
  /** Tunnel path_id patterns the public side opens (TUNNEL_PUBLIC_AUTH=required); undefined means none. */
  tunnels?: readonly string[] | undefined;
  ttlS: number;
}

export interface TunnelTokenInput {
  pathId: string;
  /** `sub`; defaults to `tunnel-<pathId>`. */
  user?: string | undefined;
  ttlS: number;
}

// The claims are checked against the verifier's rules here, so a bad value
// fails where it is written instead of as a token_invalid on some client.
export class TokenSigner {
  constructor(private readonly options: TokenSignerOptions) {}

  get algorithm(): string {
    return this.options.key.kind === 'eddsa' ? 'EdDSA' : this.options.key.algorithm;
  }

  signApp({ user, device, roles, rooms, tunnels, ttlS }: AppTokenInput): string {
    checkName('user', user);
    if (device !== undefined) checkName('device', device);
    if (rooms !== undefined && !rooms.every(isRoomPattern)) throw new RangeError('rooms: each must be a room name, optionally ending in *');
    if (tunnels !== undefined && !tunnels.every(isTunnelPattern)) throw new RangeError('tunnels: each must be a path_id, optionally ending in *');
    const claims: Record<string, unknown> = { sub: user };
    if (device !== undefined) claims.device_id = device;
    if (roles !== undefined && roles.length > 0) claims.roles = [...new Set(roles)];
    if (rooms !== undefined) claims.rooms = [...rooms];
    if (tunnels !== undefined) claims.tunnels = [...tunnels];
    return this.sign(claims, ttlS);
  }

  /** A token the Telephone sidecar and `switchboard tunnel` accept: sub, jti, path_id, iat, exp, roles ["tunnel"]. */
  signTunnel({ pathId, user, ttlS }: TunnelTokenInput): string {
    if (!PATH_ID_PATTERN.test(pathId)) throw new RangeError(`pathId: must be ${PATH_ID_RULE}`);
    const sub = user ?? `tunnel-${pathId}`;
    checkName('user', sub);
    return this.sign({ sub, path_id: pathId, roles: ['tunnel'] }, ttlS);
  }

  /** The refreshed tunnel token (TUNNEL-PROTOCOL §5): same sub, path_id and roles; new jti, iat and exp. */
  refreshTunnel(claims: Claims, ttlS: number): string {
    if (claims.pathId === undefined) throw new RangeError('refreshTunnel: the claims have no path_id');
    return this.sign({ sub: claims.user, path_id: claims.pathId, roles: [...claims.roles] }, ttlS);
  }

  private sign(claims: Record<string, unknown>, ttlS: number): string {
    if (!Number.isSafeInteger(ttlS) || ttlS < 1) throw new RangeError(`ttlS: must be a positive whole number of seconds (got ${ttlS})`);
    const iat = Math.floor(Date.now() / 1000);
    const { key, issuer, audience } = this.options;
    const payload: Record<string, unknown> = { ...claims, jti: randomUUID(), iat, exp: iat + ttlS };
    if (issuer !== undefined) payload.iss = issuer;
    if (audience !== undefined) payload.aud = audience;
    if (key.kind === 'jws') return jwt.sign(payload, key.key, { algorithm: key.algorithm });
    // jsonwebtoken 9 cannot sign EdDSA (RFC 8037): the compact form is built here.
    const input = `${base64url({ alg: 'EdDSA', typ: 'JWT' })}.${base64url(payload)}`;
    return `${input}.${cryptoSign(null, Buffer.from(input), key.key).toString('base64url')}`;
  }
}

/** The node's signer, or undefined when it has no signing key (only a public key or a JWKS URL). */
export function signerFromConfig(config: Config): TokenSigner | undefined {
  const key = signingKeyFromConfig(config);
  return key === undefined ? undefined : new TokenSigner({ key, issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE });
}

function checkName(field: string, value: string): void {
  if (!NAME_PATTERN.test(value)) throw new RangeError(`${field}: must be ${NAME_RULE}`);
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}
