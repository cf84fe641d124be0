// Who may use the public side of a tunnel (/call/<path_id>/…, or a tunnel
// host), and how often: the `access` decision of the public HTTP relay and of
// the public WebSocket upgrade (README "Access control for tunnels").
//
//   request ─► per-IP attempt rate ─► open: through, nothing touched, anonymous
//                │ 429                required: token ─► verify ─► `tunnels` claim ─► per-user rate ─► through
//                                                │ 401     │ 401       │ 403               │ 429
//
// The token is read from `?token=`, else the TUNNEL_AUTH_COOKIE cookie, else
// `Authorization: Bearer`: the most specific source first, since a back end
// may well use Authorization for credentials of its own, while the cookie is
// named for Switchboard. What the gate reads is its own and never reaches the
// back end (a token relayed to one tunnel could be replayed against every
// other tunnel its `tunnels` claim opens): every `token` query parameter and
// every cookie of that name are removed, the rest of the query and of the
// Cookie header kept byte for byte and in order; Authorization is removed
// only when its Bearer token is the one the gate used, so a back end's own
// Basic or Bearer credentials still pass.
//
// Synchronous whenever the verifier and the limiter are (a static key, one
// node): the client's address is read before anything could wait.
import { bearerToken } from '../auth/bearer';
import { tunnelAllowed, type TokenVerifier } from '../auth/claims';
import type { Config } from '../config/load';
import type { ClientIpResolver } from '../http/client-ip';
import type { Metrics } from '../metrics/metrics';
import type { ConnectionLimits } from '../ratelimit/connection-limits';
import type { RateDecision, UserRateLimiter } from '../ratelimit/rate-limiter';
import { errorReply, queryParam, type HttpReply, type RequestInfo } from '../transport/http-types';
import { chainMaybe, mapMaybe, type MaybePromise } from '../util/maybe-promise';

/** The query parameter the gate reads its token from (as /ws does). */
const TOKEN_PARAM = 'token';

export interface PublicAccessDeps {
  config: Pick<Config, 'TUNNEL_PUBLIC_AUTH' | 'TUNNEL_AUTH_COOKIE'>;
  verifier: TokenVerifier;
  /** The per-user limit app frames count against (RATE_LIMIT_POINTS per RATE_LIMIT_DURATION_S). */
  limiter: UserRateLimiter;
  /** The per-IP attempt rate upgrades count against (CONNECT_RATE_PER_IP). */
  limits: Pick<ConnectionLimits, 'admitRequest'>;
  clientIp: ClientIpResolver;
  metrics: Pick<Metrics, 'rateLimitExceeded'>;
}

type TokenSource = 'query' | 'cookie' | 'authorization';

/**
 * The access decision for a public request: a refusal, or who it is (undefined:
 * anonymous), the query to relay and the relayed headers it consumed (withoutConsumed applies them).
 */
export type PublicAccessDecision =
  | { ok: false; reply: HttpReply }
  | { ok: true; user: string | undefined; query: string; headers?: Readonly<Record<string, string | null>> };

export function publicAccess(deps: PublicAccessDeps): (request: RequestInfo, pathId: string) => MaybePromise<PublicAccessDecision> {
  const { config, verifier, limiter, limits, metrics } = deps;
  const cookieName = config.TUNNEL_AUTH_COOKIE;

  const rateLimited = (decision: Extract<RateDecision, { allowed: false }>, message: string): PublicAccessDecision => {
    metrics.rateLimitExceeded.inc();
    const reply = errorReply('rate_limited', message);
    return { ok: false, reply: { ...reply, headers: { ...reply.headers, 'retry-after': String(Math.max(1, Math.ceil(decision.retryAfterMs / 1000))) } } };
  };

  return (request, pathId) => {
    const perIp = limits.admitRequest(() => deps.clientIp(request));
    if (!perIp.allowed) return rateLimited(perIp, 'too many requests from this address');
    if (config.TUNNEL_PUBLIC_AUTH === 'open') return { ok: true, user: undefined, query: request.query };

    const found = gateToken(request, cookieName);
    if (found === undefined) return unauthorized(`a token is required: ?token=, the ${cookieName} cookie or Authorization: Bearer`, 'Bearer');
    const headers = Object.create(null) as Record<string, string | null>;
    const cookie = request.headers.cookie;
    const cookieLeft = cookie === undefined ? undefined : withoutCookie(cookie, cookieName);
    if (cookieLeft !== cookie) headers.cookie = cookieLeft ?? null;
    if (found.source === 'authorization') headers.authorization = null;
    const query = withoutParam(request.query, TOKEN_PARAM);

    return chainMaybe(verifier.verify(found.token), (verified): MaybePromise<PublicAccessDecision> => {
      if (!verified.ok) return unauthorized(`token rejected: ${verified.reason}`, 'Bearer error="invalid_token"');
      const { claims } = verified;
      if (!tunnelAllowed(claims, pathId)) return { ok: false, reply: errorReply('forbidden', "this tunnel is outside the token's tunnels claim") };
      return mapMaybe(limiter.consume(claims.user), (decision): PublicAccessDecision =>
        decision.allowed ? { ok: true, user: claims.user, query, headers } : rateLimited(decision, 'over the per-user rate limit'),
      );
    });
  };
}

/**
 * The relayed headers less what the gate consumed: a decision's `headers` edits (null removes a
 * header, a string replaces its value), applied only to headers still there: one the relay already
 * dropped (a hop-by-hop one, or not forwarded on a WebSocket) is not brought back.
 */
export function withoutConsumed(headers: Record<string, string>, decided: Extract<PublicAccessDecision, { ok: true }>): Record<string, string> {
  const edits = decided.headers;
  if (edits === undefined) return headers;
  const out = Object.assign(Object.create(null) as Record<string, string>, headers);
  for (const name of Object.keys(edits)) {
    const value = edits[name];
    if (out[name] === undefined || value === undefined) continue;
    if (value === null) delete out[name];
    else out[name] = value;
  }
  return out;
}

/** The gate's token and where it came from; an empty value counts as none. */
function gateToken(request: RequestInfo, cookieName: string): { token: string; source: TokenSource } | undefined {
  const fromQuery = queryParam(request.query, TOKEN_PARAM);
  if (fromQuery !== undefined && fromQuery !== '') return { token: fromQuery, source: 'query' };
  const fromCookie = cookieValue(request.headers.cookie, cookieName);
  if (fromCookie !== undefined && fromCookie !== '') return { token: fromCookie, source: 'cookie' };
  const fromHeader = bearerToken(request.headers.authorization);
  return fromHeader === undefined ? undefined : { token: fromHeader, source: 'authorization' };
}

function unauthorized(message: string, challenge: string): PublicAccessDecision {
  const reply = errorReply('unauthorized', message);
  return { ok: false, reply: { ...reply, headers: { ...reply.headers, 'www-authenticate': challenge } } };
}

/**
 * The first cookie called `name` in a Cookie header (`a=1; name=v`, RFC 6265 §5.4), its value
 * without the optional double quotes. Browsers send the cookie with the most specific path first.
 */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq === -1 || pair.slice(0, eq).trim() !== name) continue;
    const value = pair.slice(eq + 1).trim();
    return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
  }
  return undefined;
}

/**
 * A Cookie header without the cookies called `name`, the others as sent and in order (joined by
 * `; `); the header itself when it has none of them, undefined when nothing is left.
 */
export function withoutCookie(header: string, name: string): string | undefined {
  const pairs = header.split(';');
  const kept = pairs.filter((pair) => {
    const eq = pair.indexOf('=');
    return (eq === -1 ? pair : pair.slice(0, eq)).trim() !== name;
  });
  if (kept.length === pairs.length) return header;
  const left = kept.map((pair) => pair.trim()).filter((pair) => pair !== '');
  return left.length === 0 ? undefined : left.join('; ');
}

/**
 * A query string without the parameters called `name`, every other one byte for byte and in
 * order. Names are compared as URLSearchParams reads them (`%74oken` decoded, a leading `?` of
 * `/x??token=` dropped), so no spelling of the gate's parameter that queryParam could read slips through.
 */
export function withoutParam(query: string, name: string): string {
  if (query === '') return query;
  return query
    .split('&')
    .filter((pair) => paramName(pair) !== name)
    .join('&');
}

function paramName(pair: string): string {
  const eq = pair.indexOf('=');
  const raw = eq === -1 ? pair : pair.slice(0, eq);
  if (!/[%+?]/.test(raw)) return raw;
  return new URLSearchParams(`${raw}=`).keys().next().value ?? raw;
}
