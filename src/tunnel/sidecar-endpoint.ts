// /telephone/websocket (SPEC §5, TUNNEL-PROTOCOL.md §1): where tunnel sidecars
// connect. Unlike /ws, a missing or bad token is refused at the upgrade with
// HTTP 403: the Telephone client treats a failed handshake as fatal at
// start-up and backs off after that, where an accepted-then-closed socket
// would make it reconnect at once, forever.
import { bearerToken } from '../auth/bearer';
import type { Claims, TokenVerifier } from '../auth/claims';
import { audit } from '../log/audit';
import { errorReply, queryParam, type UpgradeDecision, type WsEndpoint } from '../transport/http-types';
import { mapMaybe } from '../util/maybe-promise';
import { SidecarSession, type SidecarDeps, type TunnelClaims } from './sidecar-session';

export interface SidecarEndpointDeps extends SidecarDeps {
  verifier: TokenVerifier;
  isDraining: () => boolean;
}

/** Room for the JSON frame around a response of MAX_RESPONSE_BYTES (its members, and escaping of a text body). */
const FRAME_OVERHEAD_BYTES = 1024 * 1024;

/**
 * A token that may serve tunnels: it names a path_id, and has the `tunnel` role — or no roles at
 * all, as Telephone-era tokens do (TUNNEL-PROTOCOL.md §1).
 */
export function tunnelClaims(claims: Claims): TunnelClaims | undefined {
  if (claims.pathId === undefined || (claims.roles.size > 0 && !claims.roles.has('tunnel'))) return undefined;
  return { ...claims, pathId: claims.pathId };
}

export function sidecarEndpoint(deps: SidecarEndpointDeps): WsEndpoint<TunnelClaims> {
  const { config, logger } = deps;
  const refuse = (reason: string): UpgradeDecision<TunnelClaims> => {
    audit(logger, 'auth_failed', { reason, phase: 'tunnel_connect' });
    return { accept: false, reply: errorReply('forbidden', 'a tunnel token (path_id, role tunnel) is required') };
  };
  return {
    pattern: '/telephone/websocket',
    // A baseline response is one message of up to MAX_RESPONSE_BYTES, and only this endpoint takes one that large.
    maxPayloadBytes: config.MAX_RESPONSE_BYTES + FRAME_OVERHEAD_BYTES,
    oversizeHeadroom: 1,
    idleTimeoutS: config.IDLE_TIMEOUT_S,
    // Requests pushed to the sidecar carry bodies of up to MAX_REQUEST_BYTES.
    maxBufferedBytes: config.MAX_BUFFERED_BYTES + config.MAX_REQUEST_BYTES,
    upgradeHeaders: ['authorization'],

    upgrade(request) {
      if (deps.isDraining()) return { accept: false, reply: errorReply('draining', 'this node is shutting down; connect to another node') };
      const token = queryParam(request.query, 'token') || bearerToken(request.headers.authorization);
      if (token === undefined || token === '') return refuse('token_missing');
      return mapMaybe(deps.verifier.verify(token), (verified) => {
        if (!verified.ok) return refuse(verified.reason);
        const claims = tunnelClaims(verified.claims);
        return claims === undefined ? refuse('not_a_tunnel_token') : { accept: true, context: claims };
      });
    },

    open(connection, claims) {
      const session = new SidecarSession(deps, connection, claims);
      session.open();
      return session;
    },
  };
}
