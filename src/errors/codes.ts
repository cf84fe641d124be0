// Every error code and close code Switchboard sends, declared once. README's
// tables and docs/errors.md are checked against these (test/unit/docs-in-step.test.ts,
// test/unit/errors-doc.test.ts), so the documentation and the code cannot drift apart.

/** `{"type":"error","code":...}` codes of the app protocol (SPEC §3.6). */
export const ERROR_CODES = {
  bad_message: 'not JSON, not an object, missing or wrong-typed field, bad id or room name, binary frame',
  unknown_type: '`type` not in this contract',
  rate_limited: 'over the per-user rate; carries `retry_after_ms`; the message is dropped, the connection stays',
  peer_offline: 'no device of the recipient (or not that device) is connected anywhere',
  not_subscribed: 'publish to a room the connection has not joined',
  forbidden: "room outside the token's `rooms` patterns",
  token_invalid: 'refresh with an invalid token or another user',
  limit_exceeded: 'too many rooms or watched users',
  unavailable: 'the cluster bus (Redis) is down; the message was not delivered',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * WebSocket close codes and the reason text sent with each. The reason says
 * what the client should do (reconnect policy), as centrifuge's disconnect
 * codes do.
 */
export const CLOSE = {
  normal: { code: 1000, reason: 'normal' },
  going_away: { code: 1001, reason: 'going_away' },
  heartbeat_timeout: { code: 1001, reason: 'heartbeat_timeout' },
  token_missing: { code: 1008, reason: 'token_missing' },
  token_invalid: { code: 1008, reason: 'token_invalid' },
  token_expired_at_connect: { code: 1008, reason: 'token_expired' },
  too_large: { code: 1009, reason: 'message_too_big' },
  draining: { code: 1012, reason: 'draining' },
  /** A relayed WebSocket whose back end could not be reached (ws_error, or no ws_connected in time). */
  bad_gateway: { code: 1014, reason: 'bad_gateway' },
  token_expired: { code: 4001, reason: 'token_expired' },
  rate_limited: { code: 4008, reason: 'rate_limited' },
  replaced: { code: 4009, reason: 'replaced' },
  slow_consumer: { code: 4010, reason: 'slow_consumer' },
} as const satisfies Record<string, { code: number; reason: string }>;

export type CloseName = keyof typeof CLOSE;
export type Close = (typeof CLOSE)[CloseName];

/** What the client should do on each close code (SPEC §3.8); README's table is checked against it. */
export const CLOSE_ADVICE: Readonly<Record<number, string>> = {
  1008: 'authentication failed at connect: get a new token',
  1009: 'frame too large: fix the client',
  1012: 'node draining (deploy, scale-in): reconnect at once, resume',
  1014: 'relayed WebSocket: the back end behind the tunnel could not be reached',
  4001: 'token expired: refresh sooner',
  4008: 'rate-limit abuse: back off',
  4009: 'replaced by a newer connection of the same device: do not reconnect',
  4010: 'slow consumer: reconnect and resume',
};

/** HTTP error codes of the JSON error bodies `{"error":"<code>","message":"..."}`. */
export const HTTP_ERRORS = {
  not_found: 404,
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  payload_too_large: 413,
  method_not_allowed: 405,
  too_many_connections: 429,
  node_full: 503,
  draining: 503,
  unavailable: 503,
  internal: 500,
  // The tunnel relay (SPEC §5, TUNNEL-PROTOCOL.md §6).
  no_tunnel: 503,
  tunnel_disconnected: 502,
  tunnel_timeout: 504,
  response_too_large: 502,
  tunnel_error: 502,
  rate_limited: 429,
} as const;

export type HttpErrorCode = keyof typeof HTTP_ERRORS;

/**
 * Reasons of the error replies on a tunnel sidecar's channel (/telephone/websocket):
 * `["<join_ref>","<ref>","telephone:<path_id>","phx_reply",{"status":"error","response":{"reason":...}}]`.
 */
export const SIDECAR_REPLY_ERRORS = {
  path_id_mismatch: "a join for a topic other than telephone:<the token's path_id>",
  unavailable: 'the tunnel registry (Redis) did not take the join',
  refresh_unavailable: 'refresh_token on a node that cannot sign tokens (a public key or JWKS without JWT_PRIVATE_KEY)',
} as const;

export type SidecarReplyError = keyof typeof SIDECAR_REPLY_ERRORS;
