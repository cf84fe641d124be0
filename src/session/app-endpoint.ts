// The /ws endpoint: admission at upgrade (drain, node and per-IP limits, token)
// and the session for each accepted socket.
//
// Authentication failures are accepted and closed at once with 1008 and a
// reason, because browsers can read a close code but not an HTTP 401 (SPEC §2).
// Limits answer the upgrade itself with 429/503: the client never gets a socket.
//
// With a static key the whole upgrade is decided synchronously (limits and JWT
// verification), and the session itself is the socket's handler: no promise
// and no closures per connection (bench W4, W5).
import { bearerToken } from '../auth/bearer';
import type { AuthFailure, Claims } from '../auth/claims';
import { CLOSE } from '../errors/codes';
import type { ClientIpResolver } from '../http/client-ip';
import { audit } from '../log/audit';
import type { ConnectionLimits } from '../ratelimit/connection-limits';
import { errorReply, queryParam, type RequestInfo, type UpgradeDecision, type WsEndpoint, type WsHandler } from '../transport/http-types';
import type { Connection } from '../transport/connection';
import { chainMaybe, type MaybePromise } from '../util/maybe-promise';
import { ClientSession, type SessionDeps } from './client-session';
import { ExpiryWheel } from './expiry-wheel';
import { claimForResume, takenWaitMs, type ResumeOutcome } from './resume-claim';

interface AppSocketContext {
  ipKey: string;
  claims?: Claims;
  failure?: AuthFailure;
  /** Asked for with `?resume=`: the session claimed, or why not (resume-claim.ts). */
  resume?: ResumeOutcome;
}

export interface AppEndpointDeps extends Omit<SessionDeps, 'expiries' | 'limits'> {
  limits: ConnectionLimits;
  clientIp: ClientIpResolver;
  isDraining: () => boolean;
}

/** The token from `?token=` or `Authorization: Bearer` (SPEC §2). */
export function tokenFrom(request: RequestInfo): string | undefined {
  const fromQuery = queryParam(request.query, 'token');
  if (fromQuery !== undefined && fromQuery !== '') return fromQuery;
  return bearerToken(request.headers.authorization);
}

export function appEndpoint(deps: AppEndpointDeps): WsEndpoint<AppSocketContext> {
  const { config, metrics, logger, limits } = deps;
  const sessionDeps: SessionDeps = { ...deps, expiries: new ExpiryWheel<ClientSession>() };

  /** An accepted socket whose token failed: closed at once, its slot given back when it is gone. */
  const refused = (ipKey: string): WsHandler => ({ onMessage: () => undefined, onClose: () => limits.release(ipKey) });

  return {
    pattern: '/ws',
    maxPayloadBytes: config.MAX_PAYLOAD_BYTES,
    idleTimeoutS: config.IDLE_TIMEOUT_S,
    maxBufferedBytes: config.MAX_BUFFERED_BYTES,
    // X-Forwarded-For names the client only behind a trusted proxy (http/client-ip.ts).
    upgradeHeaders: config.TRUSTED_PROXIES.length > 0 ? ['authorization', 'x-forwarded-for'] : ['authorization'],

    upgrade(request): MaybePromise<UpgradeDecision<AppSocketContext>> {
      if (deps.isDraining()) {
        metrics.connectionsRejected.labels('draining').inc();
        return { accept: false, reply: errorReply('draining', 'this node is shutting down; connect to another node') };
      }
      const admitted = limits.admit(() => deps.clientIp(request));
      if (!admitted.ok) {
        metrics.connectionsRejected.labels(admitted.code).inc();
        audit(logger, 'connection_rejected', { reason: admitted.code, status: admitted.status });
        return { accept: false, reply: errorReply(admitted.status === 429 ? 'too_many_connections' : 'node_full', admitted.message) };
      }
      const { ipKey } = admitted;
      const token = tokenFrom(request);
      if (token === undefined) return { accept: true, context: { ipKey, failure: 'token_missing' } };
      const resume = config.RESUME_WINDOW_S > 0 ? queryParam(request.query, 'resume') : undefined;
      return chainMaybe(deps.verifier.verify(token), (verified): MaybePromise<UpgradeDecision<AppSocketContext>> => {
        if (!verified.ok) return { accept: true, context: { ipKey, failure: verified.reason } };
        const { claims } = verified;
        if (resume === undefined || resume === '') return { accept: true, context: { ipKey, claims } };
        return claimForResume(deps.resumeStore, resume, claims, takenWaitMs(config.PRESENCE_TTL_MS)).then((outcome) => ({ accept: true, context: { ipKey, claims, resume: outcome } }));
      });
    },

    abandoned: (context) => {
      limits.release(context.ipKey);
      // The client left before its socket opened: the session it claimed goes away again, buffer and all.
      if (context.resume?.resumed === true) void deps.resumeStore.away(context.resume.claim).catch(() => undefined);
    },

    open(connection: Connection, context: AppSocketContext): WsHandler {
      if (context.claims === undefined) {
        const failure = context.failure ?? 'token_invalid';
        metrics.connectionsRejected.labels(failure).inc();
        audit(logger, 'auth_failed', { reason: failure, phase: 'connect' });
        connection.close(failure === 'token_expired' ? CLOSE.token_expired_at_connect : CLOSE[failure]);
        return refused(context.ipKey);
      }
      const session = new ClientSession(sessionDeps, connection, context.claims, context.ipKey, context.resume);
      session.open();
      return session;
    },
  };
}
