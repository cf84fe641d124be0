// The back-end HTTP API (SPEC §4): server-side publish and presence queries,
// for callers holding a token with the `admin` role.
import { bearerToken } from '../auth/bearer';
import type { TokenVerifier } from '../auth/claims';
import { audit } from '../log/audit';
import type { Logger } from '../log/logger';
import { MAX_USERS_PER_LIST } from '../protocol/app-codec';
import { isValidName, NAME_RULE } from '../protocol/names';
import { BusUnavailableError, type EventTarget, type Router } from '../routing/router';
import { errorReply, jsonReply, type HttpReply, type HttpRoute, type RequestInfo } from '../transport/http-types';
import { mapMaybe, type MaybePromise } from '../util/maybe-promise';

export const MAX_PUBLISH_BODY_BYTES = 1024 * 1024;

export interface AdminApiDeps {
  verifier: TokenVerifier;
  router: Router;
  logger: Logger;
}

export function adminRoutes(deps: AdminApiDeps): HttpRoute[] {
  // The token is checked before any of the body is read (HttpRoute.authorize), so a caller
  // without one cannot make the node take in a megabyte first.
  const authorize = (request: RequestInfo) => authorizeAdmin(deps, request);
  return [
    { method: 'post', pattern: '/v1/publish', maxBodyBytes: MAX_PUBLISH_BODY_BYTES, authorize, handle: (_request, body) => publish(deps, body) },
    { method: 'get', pattern: '/v1/presence', authorize, handle: (request) => presence(deps, request) },
  ];
}

/** Undefined when the caller is an admin; otherwise the 401/403 reply. Known at once with a static key. */
function authorizeAdmin(deps: AdminApiDeps, request: RequestInfo): MaybePromise<HttpReply | undefined> {
  const token = bearerToken(request.headers.authorization);
  if (token === undefined) {
    audit(deps.logger, 'admin_auth_failed', { reason: 'token_missing', path: request.path });
    return errorReply('unauthorized', 'an admin token is required: Authorization: Bearer <jwt>');
  }
  return mapMaybe(deps.verifier.verify(token), (result) => {
    if (!result.ok) {
      audit(deps.logger, 'admin_auth_failed', { reason: result.reason, path: request.path });
      return errorReply('unauthorized', `token rejected: ${result.reason}`);
    }
    if (!result.claims.roles.has('admin')) {
      audit(deps.logger, 'admin_auth_failed', { reason: 'not_admin', user: result.claims.user, path: request.path });
      return errorReply('forbidden', 'the token lacks the admin role');
    }
    return undefined;
  });
}

type ParsedPublish = { ok: true; target: EventTarget; event: string; payload: unknown } | { ok: false; message: string };

export function parsePublish(body: Buffer): ParsedPublish {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return { ok: false, message: 'body is not valid JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, message: 'body must be a JSON object' };
  const v = value as Record<string, unknown>;
  if (!isValidName(v.event)) return { ok: false, message: `"event" must be ${NAME_RULE}` };
  const targets = [v.to !== undefined, v.room !== undefined, v.broadcast !== undefined].filter(Boolean).length;
  if (targets !== 1) return { ok: false, message: 'exactly one of "to", "room" or "broadcast" is required' };
  let target: EventTarget;
  if (v.to !== undefined) {
    if (!isValidName(v.to)) return { ok: false, message: '"to" must be a valid user id' };
    if (v.device !== undefined && !isValidName(v.device)) return { ok: false, message: '"device" must be a valid device id' };
    target = v.device === undefined ? { user: v.to } : { user: v.to, device: v.device };
  } else if (v.room !== undefined) {
    if (!isValidName(v.room)) return { ok: false, message: '"room" must be a valid room name' };
    if (v.device !== undefined) return { ok: false, message: '"device" goes with "to" only' };
    target = { room: v.room };
  } else {
    if (v.broadcast !== true) return { ok: false, message: '"broadcast" must be true' };
    target = { broadcast: true };
  }
  return { ok: true, target, event: v.event, payload: v.payload ?? null };
}

async function publish(deps: AdminApiDeps, body: Buffer): Promise<HttpReply> {
  const parsed = parsePublish(body);
  if (!parsed.ok) return errorReply('bad_request', parsed.message);
  try {
    await deps.router.publishEvent(parsed.target, parsed.event, parsed.payload);
  } catch (error) {
    if (error instanceof BusUnavailableError) return errorReply('unavailable', 'the cluster bus is down; the event was not delivered everywhere');
    throw error;
  }
  audit(deps.logger, 'admin_publish', { published_event: parsed.event, target: Object.keys(parsed.target).join(',') });
  return jsonReply(202, { accepted: true });
}

async function presence(deps: AdminApiDeps, request: RequestInfo): Promise<HttpReply> {
  const raw = new URLSearchParams(request.query).get('users') ?? '';
  const users = [...new Set(raw.split(',').filter((u) => u !== ''))];
  if (users.length === 0 || users.length > MAX_USERS_PER_LIST)
    return errorReply('bad_request', `"users" must list 1-${MAX_USERS_PER_LIST} comma-separated user ids`);
  if (!users.every(isValidName)) return errorReply('bad_request', '"users" holds an invalid user id');
  try {
    return jsonReply(200, { users: await deps.router.watches.status(users) });
  } catch (error) {
    if (error instanceof BusUnavailableError) return errorReply('unavailable', 'the cluster bus is down');
    throw error;
  }
}
