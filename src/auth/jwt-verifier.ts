// Verifies app, admin and tunnel tokens (SPEC §2, TUNNEL-PROTOCOL §1) and maps
// the payload to Claims. verify() never throws: every failure is a result with
// `token_invalid`, or `token_expired` for a token whose only fault is its `exp`.
//
//   token ─▶ key: static (JWT_SECRET / PEM)  or  JWKS by `kid` (cached, refetched on an unknown kid)
//         ─▶ signature + nbf/exp/iss/aud: jsonwebtoken for RS/PS/ES; node:crypto for EdDSA (which
//            jsonwebtoken lacks) and for HS (one per connect: ~2.5 µs instead of ~7, bench W5),
//            both with jsonwebtoken's checks, order and error classes
//         ─▶ claims: sub/user_id, device_id, roles, rooms, tunnels, path_id checked and typed
import jwt from 'jsonwebtoken';
import { JwksClient, JwksRateLimitError, SigningKeyNotFoundError, type SigningKey as JwksSigningKey } from 'jwks-rsa';
import { createHmac, createPublicKey, timingSafeEqual, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { ROLES, type Claims, type Role, type TokenVerifier, type VerifyResult } from './claims';
import { keySourceFromConfig, verificationKeyFor, type AsymmetricAlgorithm, type VerificationKey } from './keys';
import type { Config } from '../config/load';
import type { Logger } from '../log/logger';
import { NAME_PATTERN, NAME_RULE, PATH_ID_PATTERN, PATH_ID_RULE } from '../protocol/names';

// Covers clock skew between the issuer and NTP-synced nodes, so a token minted
// on a host whose clock runs a little ahead is not refused by its `nbf`; the
// price is that a token stays usable for at most this long after its `exp`.
export const CLOCK_TOLERANCE_S = 5;
// Real tokens are well under 2 KiB; anything far larger is refused before any
// base64 or JSON work is spent on it.
export const MAX_TOKEN_LENGTH = 8192;

// A removed key keeps verifying for at most JWKS_CACHE_MAX_AGE_MS; a new `kid`
// is fetched at once. The rate limit bounds the fetches that tokens with
// made-up `kid`s can cause.
const JWKS_CACHE_MAX_AGE_MS = 10 * 60_000;
const JWKS_REQUESTS_PER_MINUTE = 10;
const JWKS_TIMEOUT_MS = 5000;
const ASYMMETRIC_ALGORITHMS: ReadonlySet<string> = new Set<AsymmetricAlgorithm>([
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA',
]);
const KNOWN_ROLES: ReadonlySet<string> = new Set(ROLES);
/** Shared by every token without roles (nearly all app tokens): a Set per connection costs ~100 B. */
const NO_ROLES: ReadonlySet<Role> = new Set();
const BASE64URL = /^[A-Za-z0-9_-]*$/;

export interface JwtVerifierOptions {
  config: Config;
  logger?: Logger;
}

type PreparedKey =
  | { kind: 'jws'; key: KeyObject; options: jwt.VerifyOptions & { algorithms: jwt.Algorithm[] } }
  | { kind: 'hmac'; key: KeyObject }
  | { kind: 'eddsa'; key: KeyObject };

/** The hash of each HS algorithm (RFC 7518 §3.2). A Map: `alg` comes from the token, and an object would answer "constructor". */
const HMAC_HASHES: ReadonlyMap<string, string> = new Map([
  ['HS256', 'sha256'],
  ['HS384', 'sha384'],
  ['HS512', 'sha512'],
]);

interface ClaimChecks {
  issuer: string | undefined;
  audience: string | undefined;
}

export class JwtVerifier implements TokenVerifier {
  private readonly logger: Logger | undefined;
  private readonly checks: ClaimChecks;
  private readonly requireExp: boolean;
  private readonly staticKey: PreparedKey | undefined;
  private readonly jwks: JwksClient | undefined;
  private readonly jwksUrl: string | undefined;
  // jwks-rsa hands back the same object while a key is cached, and a new one
  // after a refetch, so the converted key lives exactly as long as its entry.
  private readonly jwksKeys = new WeakMap<JwksSigningKey, PreparedKey | string>();

  /** Throws when the configured key cannot be used (bad PEM, unsupported key type). */
  constructor({ config, logger }: JwtVerifierOptions) {
    this.logger = logger;
    this.checks = { issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE };
    this.requireExp = config.JWT_REQUIRE_EXP;
    const source = keySourceFromConfig(config);
    if (source.kind === 'static') {
      this.staticKey = this.prepare(source.key);
    } else {
      this.jwksUrl = source.url;
      this.jwks = new JwksClient({
        jwksUri: source.url,
        cache: true,
        cacheMaxEntries: 32,
        cacheMaxAge: JWKS_CACHE_MAX_AGE_MS,
        rateLimit: true,
        jwksRequestsPerMinute: JWKS_REQUESTS_PER_MINUTE,
        timeout: JWKS_TIMEOUT_MS,
      });
    }
  }

  /** Synchronous with a static key: an upgrade is then answered without a promise (bench W5). */
  verify(token: string): VerifyResult | Promise<VerifyResult> {
    if (typeof token !== 'string' || token === '') return invalid('empty token');
    if (token.length > MAX_TOKEN_LENGTH) return invalid(`token longer than ${MAX_TOKEN_LENGTH} chars`);
    if (this.staticKey !== undefined) return this.verifyWith(token, this.staticKey);
    return this.jwksKey(token).then(
      (key) => (typeof key === 'string' ? invalid(key) : this.verifyWith(token, key)),
      (error: unknown) => failure(error),
    );
  }

  private verifyWith(token: string, key: PreparedKey): VerifyResult {
    try {
      const payload =
        key.kind === 'jws' ? jwt.verify(token, key.key, key.options) : key.kind === 'hmac' ? verifyHmac(token, key.key, this.checks) : verifyEdDsa(token, key.key, this.checks);
      return claimsFromPayload(payload, this.requireExp);
    } catch (error) {
      return failure(error);
    }
  }

  private prepare(key: VerificationKey): PreparedKey {
    if (key.kind === 'eddsa') return key;
    if (key.key.type === 'secret') return { kind: 'hmac', key: key.key };
    const { issuer, audience } = this.checks;
    return {
      kind: 'jws',
      key: key.key,
      options: {
        algorithms: [...key.algorithms],
        clockTolerance: CLOCK_TOLERANCE_S,
        ...(issuer === undefined ? {} : { issuer }),
        ...(audience === undefined ? {} : { audience }),
      },
    };
  }

  /** The JWKS key for the token's `kid`, or why there is none. */
  private async jwksKey(token: string): Promise<PreparedKey | string> {
    const jwks = this.jwks;
    if (jwks === undefined) return 'no key configured';
    const decoded = jwt.decode(token, { complete: true });
    if (decoded === null) return 'jwt malformed';
    // Header values come from the token: the declared types do not hold yet.
    const alg: unknown = decoded.header.alg;
    const kid: unknown = decoded.header.kid;
    // Refused before any fetch, so HS/none tokens cannot make the node hit the JWKS endpoint.
    if (typeof alg !== 'string' || !ASYMMETRIC_ALGORITHMS.has(alg)) return 'invalid algorithm';
    if (kid !== undefined && typeof kid !== 'string') return 'kid must be a string';
    let signingKey: JwksSigningKey;
    try {
      signingKey = await jwks.getSigningKey(kid);
    } catch (error) {
      return this.jwksFailure(error, kid);
    }
    let prepared = this.jwksKeys.get(signingKey);
    if (prepared === undefined) {
      prepared = this.prepareJwksKey(signingKey);
      this.jwksKeys.set(signingKey, prepared);
    }
    return prepared;
  }

  private prepareJwksKey(signingKey: JwksSigningKey): PreparedKey | string {
    let key: VerificationKey;
    try {
      key = verificationKeyFor(createPublicKey(signingKey.getPublicKey()), `JWKS key ${printable(signingKey.kid)}`);
    } catch (error) {
      return error instanceof Error ? error.message : 'unusable JWKS key';
    }
    // A JWK that names its `alg` may only be used with that algorithm (RFC 7517 §4.4).
    const declared: unknown = signingKey.alg;
    if (typeof declared !== 'string') return this.prepare(key);
    if (key.kind === 'eddsa') return declared === 'EdDSA' ? key : `JWKS key ${printable(signingKey.kid)} declares alg ${printable(declared)}`;
    return this.prepare({ ...key, algorithms: key.algorithms.filter((a) => a === declared) });
  }

  private jwksFailure(error: unknown, kid: string | undefined): string {
    if (error instanceof SigningKeyNotFoundError) return kid === undefined ? 'no kid and the JWKS holds several keys' : `no JWKS key with kid ${printable(kid)}`;
    if (error instanceof JwksRateLimitError) return `unknown kid ${printable(kid)}; JWKS refetch rate-limited`;
    const reason = error instanceof Error ? error.message : String(error);
    this.logger?.warn({ jwksUrl: this.jwksUrl, reason }, 'JWKS fetch failed');
    return 'JWKS endpoint unavailable';
  }
}

export function createVerifier(config: Config, logger?: Logger): JwtVerifier {
  return new JwtVerifier(logger === undefined ? { config } : { config, logger });
}

/** Maps a verified payload to Claims (SPEC §2); anything out of shape is `token_invalid`. */
export function claimsFromPayload(payload: unknown, requireExp: boolean): VerifyResult {
  if (!isRecord(payload)) return invalid('payload is not a JSON object');
  const user = payload.sub ?? payload.user_id;
  if (user === undefined) return invalid('no sub or user_id claim');
  if (typeof user !== 'string' || !NAME_PATTERN.test(user)) return invalid(`sub/user_id must be ${NAME_RULE}`);
  const { device_id: device, exp, roles, rooms, tunnels, path_id: pathId } = payload;
  if (device !== undefined && (typeof device !== 'string' || !NAME_PATTERN.test(device)))
    return invalid(`device_id must be ${NAME_RULE}`);
  if (exp === undefined && requireExp) return invalid('no exp claim');
  if (exp !== undefined && typeof exp !== 'number') return invalid('exp must be a number');
  if (pathId !== undefined && (typeof pathId !== 'string' || !PATH_ID_PATTERN.test(pathId)))
    return invalid(`path_id must be ${PATH_ID_RULE}`);
  if (roles !== undefined && !isStringArray(roles)) return invalid('roles must be an array of strings');
  if (rooms !== undefined && !(isStringArray(rooms) && rooms.every(isRoomPattern)))
    return invalid('rooms must be an array of room names, each optionally ending in *');
  if (tunnels !== undefined && !(isStringArray(tunnels) && tunnels.every(isTunnelPattern)))
    return invalid(`tunnels must be an array of path_ids (${PATH_ID_RULE}), each optionally ending in *`);

  // Telephone-era tunnel tokens carry a path_id and no roles at all (TUNNEL-PROTOCOL §1).
  const granted: Role[] = roles === undefined ? (pathId === undefined ? [] : ['tunnel']) : roles.filter(isRole);
  const claims: Claims = { user, roles: granted.length === 0 ? NO_ROLES : new Set(granted) };
  if (device !== undefined) claims.device = device;
  if (exp !== undefined) claims.exp = exp;
  if (rooms !== undefined) claims.rooms = Object.freeze([...rooms]);
  if (tunnels !== undefined) claims.tunnels = Object.freeze([...tunnels]);
  if (pathId !== undefined) claims.pathId = pathId;
  return { ok: true, claims };
}

/** A room name, a name followed by `*` (prefix match), or `*` alone (any room). */
export function isRoomPattern(pattern: string): boolean {
  return isPattern(NAME_PATTERN, pattern);
}

/** A path_id, a path_id followed by `*` (prefix match), or `*` alone (any tunnel). */
export function isTunnelPattern(pattern: string): boolean {
  return isPattern(PATH_ID_PATTERN, pattern);
}

function isPattern(rule: RegExp, pattern: string): boolean {
  if (pattern === '*') return true;
  return rule.test(pattern.endsWith('*') ? pattern.slice(0, -1) : pattern);
}

// jsonwebtoken 9 cannot verify EdDSA, so the signature is checked here and the
// registered claims with the same rules and error classes jsonwebtoken uses,
// which keeps the failure mapping in one place.
function verifyEdDsa(token: string, key: KeyObject, checks: ClaimChecks): unknown {
  const { head, body, signature } = splitCompact(token);
  const header = parseJsonPart(head);
  if (!isRecord(header) || header.alg !== 'EdDSA') throw new jwt.JsonWebTokenError('invalid algorithm');
  if (signature === '') throw new jwt.JsonWebTokenError('jwt signature is required');
  if (!cryptoVerify(null, Buffer.from(`${head}.${body}`), key, Buffer.from(signature, 'base64url')))
    throw new jwt.JsonWebTokenError('invalid signature');
  return checkedPayload(body, checks);
}

// HS tokens are verified here rather than by jsonwebtoken, in jsonwebtoken's
// order (a missing signature before the algorithm) and with its error classes:
// it decodes and re-validates its options on every call, ~7 µs against ~2.5 µs
// here, and a connect verifies one token (bench W5). The algorithm comes from
// the key (JWT_SECRET allows HS256/384/512 and nothing else); the comparison
// is constant-time.
function verifyHmac(token: string, key: KeyObject, checks: ClaimChecks): unknown {
  const { head, body, signature } = splitCompact(token);
  if (signature === '') throw new jwt.JsonWebTokenError('jwt signature is required');
  const hash = hmacHashOf(head);
  if (hash === undefined) throw new jwt.JsonWebTokenError('invalid algorithm');
  const expected = createHmac(hash, key).update(`${head}.${body}`).digest();
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new jwt.JsonWebTokenError('invalid signature');
  return checkedPayload(body, checks);
}

// An issuer's tokens all carry the same header segment: its hash is remembered
// instead of decoding the same JSON on every connect (~0.5 µs).
let lastHmacHeader = { head: '', hash: undefined as string | undefined };

/** The hash an HS token's header names, or undefined for any other algorithm. */
function hmacHashOf(head: string): string | undefined {
  if (head === lastHmacHeader.head) return lastHmacHeader.hash;
  const header = parseJsonPart(head);
  const hash = isRecord(header) && typeof header.alg === 'string' ? HMAC_HASHES.get(header.alg) : undefined;
  lastHmacHeader = { head, hash };
  return hash;
}

/** The three base64url parts of a compact JWS; throws `jwt malformed` for anything else. */
function splitCompact(token: string): { head: string; body: string; signature: string } {
  const parts = token.split('.');
  const [head, body, signature] = parts;
  if (parts.length !== 3 || head === undefined || body === undefined || signature === undefined) throw new jwt.JsonWebTokenError('jwt malformed');
  if (!BASE64URL.test(head) || !BASE64URL.test(body) || !BASE64URL.test(signature)) throw new jwt.JsonWebTokenError('jwt malformed');
  return { head, body, signature };
}

/** The payload of a token whose signature holds, once its registered claims pass. */
function checkedPayload(body: string, checks: ClaimChecks): unknown {
  const payload = parseJsonPart(body);
  if (isRecord(payload)) checkRegisteredClaims(payload, checks, Math.floor(Date.now() / 1000));
  return payload;
}

function checkRegisteredClaims(payload: Record<string, unknown>, checks: ClaimChecks, now: number): void {
  const { nbf, exp, aud, iss } = payload;
  if (nbf !== undefined) {
    if (typeof nbf !== 'number') throw new jwt.JsonWebTokenError('invalid nbf value');
    if (nbf > now + CLOCK_TOLERANCE_S) throw new jwt.NotBeforeError('jwt not active', new Date(nbf * 1000));
  }
  if (exp !== undefined) {
    if (typeof exp !== 'number') throw new jwt.JsonWebTokenError('invalid exp value');
    if (now >= exp + CLOCK_TOLERANCE_S) throw new jwt.TokenExpiredError('jwt expired', new Date(exp * 1000));
  }
  if (checks.audience !== undefined && !(Array.isArray(aud) ? aud : [aud]).includes(checks.audience))
    throw new jwt.JsonWebTokenError(`jwt audience invalid. expected: ${checks.audience}`);
  if (checks.issuer !== undefined && iss !== checks.issuer) throw new jwt.JsonWebTokenError(`jwt issuer invalid. expected: ${checks.issuer}`);
}

function parseJsonPart(part: string): unknown {
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw new jwt.JsonWebTokenError('jwt malformed');
  }
}

// The detail says which check failed, for tests and for whoever logs it (today
// nothing does: audit events carry the reason only). It is safe to log either
// way: jsonwebtoken's messages name the check and never the token, and anything
// else (JSON errors quote the input) is summarised.
function failure(error: unknown): VerifyResult {
  if (error instanceof jwt.TokenExpiredError) return { ok: false, reason: 'token_expired', detail: 'jwt expired' };
  if (error instanceof jwt.NotBeforeError) return invalid('jwt not active yet (nbf)');
  if (error instanceof jwt.JsonWebTokenError) return invalid(error.message);
  if (error instanceof SyntaxError) return invalid('jwt malformed');
  return invalid(error instanceof Error ? `rejected: ${error.message.slice(0, 120)}` : 'rejected');
}

function invalid(detail: string): VerifyResult {
  return { ok: false, reason: 'token_invalid', detail };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

function isRole(value: string): value is Role {
  return KNOWN_ROLES.has(value);
}

/** A token-supplied string shortened and stripped to something safe to put in a log line. */
function printable(value: string | undefined): string {
  return value === undefined ? '(none)' : JSON.stringify(value.slice(0, 64).replace(/[^\x20-\x7e]/g, '?'));
}
