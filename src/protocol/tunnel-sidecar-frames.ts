// PURE codec of the sidecar's side of /telephone/websocket (shared/TUNNEL-
// PROTOCOL.md): the server's pushes decoded for `switchboard tunnel`, and the
// payloads it sends. The server's side is tunnel-frames.ts; the `stream`
// events are tunnel-stream-frames.ts. No I/O, no timers; decoders never throw.
//
// Payloads are built with their members in the order the Telephone client
// writes them (its Go maps marshal sorted, its structs in declaration order),
// so a capture of this sidecar reads like one of Telephone.
import { decodeBase64, EXTENSIONS, type Extension, type Payload, type WsOpcode } from './tunnel-frames';
import { decodeStreamEvent, headerEntries, type StreamEvent } from './tunnel-stream-frames';

export interface ProxyRequestPush {
  requestId: string;
  /** As sent; the relay answers methods it does not relay itself. */
  method: string;
  path: string;
  queryString: string;
  headers: [name: string, value: string][];
  /** The body as bytes: baseline text as UTF-8, or base64 decoded (binary_body). Empty when streamed. */
  body: Buffer;
  /** `stream`: the body follows as proxy_req_chunk / proxy_req_end. */
  streamed: boolean;
}

export interface WsOpenPush {
  id: string;
  path: string;
  queryString: string;
  headers: [name: string, value: string][];
}

/** Everything the server pushes to a joined sidecar, keyed on `event` so a switch narrows it. */
export type ServerPush =
  | { event: 'proxy_req'; request: ProxyRequestPush }
  | { event: 'ws_check' | 'ws_connect'; open: WsOpenPush }
  | { event: 'ws_frame'; connectionId: string; opcode: WsOpcode; data: Buffer }
  | { event: 'ws_close'; connectionId: string; code: number; reason: string }
  | { event: 'draining'; reconnectAfterMs: number }
  | { event: 'heartbeat_ack' }
  | { event: 'proxy_req_chunk'; requestId: string; seq: number; data: Buffer }
  | { event: 'proxy_req_end' | 'proxy_cancel'; requestId: string }
  | { event: 'proxy_credit'; requestId: string; bytes: number };

const OPCODES: ReadonlySet<string> = new Set<WsOpcode>(['text', 'binary', 'ping', 'pong']);
const SERVER_STREAM_EVENTS: ReadonlySet<string> = new Set<StreamEvent['event']>(['proxy_req_chunk', 'proxy_req_end', 'proxy_credit', 'proxy_cancel']);

/** The push, or undefined for an event this sidecar does not know or a malformed payload (ignored, logged at debug). */
export function decodeServerPush(event: string, payload: Payload): ServerPush | undefined {
  switch (event) {
    case 'proxy_req':
      return decodeProxyRequestPush(payload);
    case 'ws_check':
    case 'ws_connect': {
      const id = event === 'ws_check' ? payload.check_id : payload.connection_id;
      const { path, query_string: queryString } = payload;
      if (typeof id !== 'string' || id === '' || typeof path !== 'string' || !path.startsWith('/')) return undefined;
      return { event, open: { id, path, queryString: typeof queryString === 'string' ? queryString : '', headers: headerEntries(payload.headers) } };
    }
    case 'ws_frame': {
      const { connection_id: connectionId, opcode } = payload;
      const data = decodeBase64(payload.data);
      if (typeof connectionId !== 'string' || typeof opcode !== 'string' || !OPCODES.has(opcode) || data === undefined) return undefined;
      return { event, connectionId, opcode: opcode as WsOpcode, data };
    }
    case 'ws_close': {
      const connectionId = payload.connection_id;
      if (typeof connectionId !== 'string') return undefined;
      const code = Number.isInteger(payload.code) ? (payload.code as number) : 1005;
      return { event, connectionId, code, reason: typeof payload.reason === 'string' ? payload.reason : '' };
    }
    case 'draining': {
      const after = payload.reconnect_after_ms;
      return { event, reconnectAfterMs: Number.isSafeInteger(after) && (after as number) > 0 ? (after as number) : 0 };
    }
    case 'heartbeat_ack':
      return { event };
    default:
      // Only the stream events the server sends: a proxy_res_* pushed to a sidecar means nothing.
      return SERVER_STREAM_EVENTS.has(event) ? (decodeStreamEvent(event, payload) as ServerPush | undefined) : undefined;
  }
}

function decodeProxyRequestPush(payload: Payload): ServerPush | undefined {
  const { request_id: requestId, method, path, query_string: queryString, body } = payload;
  if (typeof requestId !== 'string' || requestId === '' || typeof method !== 'string' || typeof path !== 'string') return undefined;
  const base64 = payload.body_encoding === 'base64';
  let bytes: Buffer | undefined;
  if (body === undefined || body === null) bytes = Buffer.alloc(0);
  else if (base64) bytes = decodeBase64(body);
  else if (typeof body === 'string') bytes = Buffer.from(body, 'utf8');
  if (bytes === undefined) return undefined;
  return {
    event: 'proxy_req',
    request: {
      requestId,
      method,
      path,
      queryString: typeof queryString === 'string' ? queryString : '',
      headers: headerEntries(payload.headers),
      body: bytes,
      streamed: payload.streamed === true,
    },
  };
}

export type Reply = { ok: true; response: Payload } | { ok: false; reason: string };

/** A `phx_reply` payload: `{"status":"ok"|"error","response":{...}}`. */
export function decodeReply(payload: Payload): Reply {
  const response = payload.response;
  const body: Payload = typeof response === 'object' && response !== null && !Array.isArray(response) ? (response as Payload) : {};
  if (payload.status === 'ok') return { ok: true, response: body };
  return { ok: false, reason: typeof body.reason === 'string' ? body.reason : 'error' };
}

export interface JoinGrant {
  /** What the reply lists; `stream` only with `binary_body` (its chunks are base64), as the extension doc fixes. */
  extensions: ReadonlySet<Extension>;
  /** Seconds the token has left by the server's clock, when it says. */
  expiresIn: number | undefined;
}

export function decodeJoinGrant(response: Payload): JoinGrant {
  const listed = Array.isArray(response.extensions) ? response.extensions : [];
  const extensions = new Set<Extension>(EXTENSIONS.filter((e) => listed.includes(e)));
  if (!extensions.has('binary_body')) extensions.delete('stream');
  return { extensions, expiresIn: nonNegativeInteger(response.expires_in) };
}

/** A `refresh_token` reply's new token and its lifetime. */
export function decodeRefreshed(response: Payload): { token: string; expiresIn: number | undefined } | undefined {
  const token = response.token;
  return typeof token === 'string' && token !== '' ? { token, expiresIn: nonNegativeInteger(response.expires_in) } : undefined;
}

// ── what the sidecar sends ────────────────────────────────────────────────

export interface ProxyResponseOut {
  requestId: string;
  status: number;
  headers: Readonly<Record<string, string>>;
  body: string;
  /** binary_body: `body` is base64. */
  base64: boolean;
}

/** `proxy_res` as Telephone writes it (request_id, status, headers, body, chunked), then body_encoding. */
export function proxyResponsePayload(res: ProxyResponseOut): object {
  const payload: Record<string, unknown> = { request_id: res.requestId, status: res.status, headers: res.headers, body: res.body, chunked: false };
  if (res.base64) payload.body_encoding = 'base64';
  return payload;
}

export function wsCheckResultPayload(checkId: string, result: { supported: boolean; protocol?: string; reason?: string }): object {
  const payload: Record<string, unknown> = { check_id: checkId };
  if (result.protocol !== undefined && result.protocol !== '') payload.protocol = result.protocol;
  if (result.reason !== undefined) payload.reason = result.reason;
  payload.supported = result.supported;
  return payload;
}

export function wsConnectedPayload(connectionId: string, protocol: string): object {
  return protocol === '' ? { connection_id: connectionId } : { connection_id: connectionId, protocol };
}

export function wsErrorPayload(connectionId: string, reason: string): object {
  return { connection_id: connectionId, reason };
}

export function wsFramePayload(connectionId: string, opcode: WsOpcode, data: Uint8Array): object {
  return { connection_id: connectionId, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64'), opcode };
}

export function wsClosedPayload(connectionId: string, code: number, reason: string): object {
  return { code, connection_id: connectionId, reason };
}

function nonNegativeInteger(value: unknown): number | undefined {
  return Number.isSafeInteger(value) && (value as number) >= 0 ? (value as number) : undefined;
}
