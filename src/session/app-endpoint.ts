// The /ws endpoint: admission at upgrade (drain, node and per-IP limits, token)
// and the session for each accepted socket.
//
// Authentication failures are accepted and closed at once with 1008 and a
// reason, because browsers can read a close code but not an HTTP 401 (SPEC §2).
// Limits answer the upgrade itself with 429/503: the client never gets a socket.
import type { AuthFailure, Claims } from '../auth/claims';
import { CLOSE } from '../errors/codes';
import type { ClientIpResolver } from '../http/client-ip';
import { audit } from '../log/audit';
import type { ConnectionLimits } from '../ratelimit/connection-limits';
import { errorReply, type RequestInfo, type UpgradeDecision, type WsEndpoint, type WsHandler } from '../transport/http-types';
import type { Connection } from '../transport/connection';
import { ClientSession, type SessionDeps } from './client-session';

interface AppSocketContext {
  ipKey: string;
  claims?: Claims;
  failure?: AuthFailure;
}

export interface AppEndpointDeps extends SessionDeps {
  limits: ConnectionLimits;
  clientIp: ClientIpResolver;
  isDraining: () => boolean;
  sessions: Set<ClientSession>;
}

/** The token from `?token=` or `Authorization: Bearer` (SPEC §2). */
export function tokenFrom(request: RequestInfo): string | undefined {
  const fromQuery = new URLSearchParams(request.query).get('token');
  if (fromQuery !== null && fromQuery !== '') return fromQuery;
  const match = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '');
  return match?.[1];
}

export function appEndpoint(deps: AppEndpointDeps): WsEndpoint<AppSocketContext> {
  const { config, metrics, logger } = deps;
  return {
    pattern: '/ws',
    maxPayloadBytes: config.MAX_PAYLOAD_BYTES,
    idleTimeoutS: config.IDLE_TIMEOUT_S,
    maxBufferedBytes: config.MAX_BUFFERED_BYTES,

    async upgrade(request): Promise<UpgradeDecision<AppSocketContext>> {
      if (deps.isDraining()) {
        metrics.connectionsRejected.labels('draining').inc();
        return { accept: false, reply: errorReply('draining', 'this node is shutting down; connect to another node') };
      }
      const admitted = await deps.limits.admit(deps.clientIp(request));
      if (!admitted.ok) {
        metrics.connectionsRejected.labels(admitted.code).inc();
        audit(logger, 'connection_rejected', { reason: admitted.code, status: admitted.status });
        return { accept: false, reply: errorReply(admitted.status === 429 ? 'too_many_connections' : 'node_full', admitted.message) };
      }
      const token = tokenFrom(request);
      if (token === undefined) return { accept: true, context: { ipKey: admitted.ipKey, failure: 'token_missing' } };
      const verified = await deps.verifier.verify(token);
      if (verified.ok) return { accept: true, context: { ipKey: admitted.ipKey, claims: verified.claims } };
      return { accept: true, context: { ipKey: admitted.ipKey, failure: verified.reason } };
    },

    abandoned: (context) => deps.limits.release(context.ipKey),

    open(connection: Connection, context: AppSocketContext): WsHandler {
      const release = () => deps.limits.release(context.ipKey);
      if (context.claims === undefined) {
        const failure = context.failure ?? 'token_invalid';
        metrics.connectionsRejected.labels(failure).inc();
        audit(logger, 'auth_failed', { reason: failure, phase: 'connect' });
        connection.close(failure === 'token_expired' ? CLOSE.token_expired_at_connect : CLOSE[failure]);
        return { message: () => undefined, close: release };
      }
      const session = new ClientSession(deps, connection, context.claims);
      deps.sessions.add(session);
      session.open();
      return {
        message: (data, isBinary) => session.onMessage(data, isBinary),
        close: () => {
          deps.sessions.delete(session);
          release();
          session.onClose();
        },
      };
    },
  };
}
