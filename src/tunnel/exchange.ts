// One relayed HTTP request between the public client's node and a sidecar,
// seen the same way whether the sidecar is on this node (sidecar-session.ts)
// or on another (remote-target.ts, over the bus): the public side holds a
// RequestStream, the sidecar side a ResponseSink.
//
//   public client ──body──► RequestStream ──► sidecar ──► back end
//   public client ◄──────── ResponseSink  ◄── sidecar ◄──
//
// Flow control is credit in bytes, both ways (docs/tunnel-extensions.md): each
// side may send WINDOW_BYTES before it is granted more, and grants what it has
// passed on. So a slow public client slows the sidecar, and a slow back end the
// uploader, and no node holds more than a few windows of any request.
import type { RelayedMethod } from '../protocol/tunnel-frames';

import { CHUNK_MAX_BYTES, INITIAL_CREDIT_BYTES } from '../protocol/tunnel-stream-frames';

/** Data per chunk (before base64): a sidecar's chunk, a bus message's, a public write's. */
export const CHUNK_BYTES = CHUNK_MAX_BYTES;
/** The credit each direction of a request starts with. */
export const WINDOW_BYTES = INITIAL_CREDIT_BYTES;

export interface RelayHead {
  /** A UUID (the Telephone client rejects other request ids). */
  id: string;
  method: RelayedMethod;
  /** After /call/<path_id>, starting with '/'. */
  path: string;
  queryString: string;
  /** Lowercase names, one value each, hop-by-hop ones dropped, X-Forwarded-* set. */
  headers: Readonly<Record<string, string>>;
  /** The body's length when the client declared it (0 for none); undefined when chunked. */
  bodyLength: number | undefined;
}

/** Why a relayed request failed; the public client's status comes from it (public-http.ts). */
export type RelayFailure =
  /** The sidecar is not (or no longer) where the route said: the relay may try another one. Nothing reached it. */
  | 'gone'
  /** The sidecar's socket closed with the request in flight. */
  | 'tunnel_disconnected'
  | 'tunnel_timeout'
  | 'response_too_large'
  /** The sidecar said the request failed (proxy_res_error), or broke the protocol. */
  | 'tunnel_error';

/** What the sidecar side tells the public side. */
export interface ResponseSink {
  /** The sidecar took `bytes` more of the request body: that many more may be sent. */
  bodyCredit(bytes: number): void;
  /** Status and headers (lowercase, framing and hop-by-hop ones dropped); `contentLength` when the whole length is known. */
  start(status: number, headers: [string, string][], contentLength: number | undefined): void;
  /** Part of the body, within the credit the public side granted. */
  data(chunk: Buffer): void;
  end(): void;
  /** The request failed; after `start`, the public connection is cut. */
  fail(failure: RelayFailure): void;
}

/** What the public side tells the sidecar side. */
export interface RequestStream {
  /** Part of the request body, within the credit the sidecar side granted. */
  body(chunk: Buffer): void;
  bodyEnd(): void;
  /** The public client took `bytes` more of the response. */
  credit(bytes: number): void;
  /** The public client went away, or the request timed out: the sidecar stops working on it. */
  cancel(): void;
}

/** A sidecar a request can be sent to. */
export interface TunnelTarget {
  /** `node/sidecar`: the key of this node's in-flight count for it. */
  readonly key: string;
  request(head: RelayHead, sink: ResponseSink): RequestStream;
  /** ws_check: whether the back end takes a WebSocket there (and with which subprotocol). */
  checkWebSocket(head: WsHead): Promise<WsCheckResult>;
  /** ws_connect, on the sidecar that answered the check. */
  connectWebSocket(head: WsHead, sink: WsSink): WsStream;
}

/** Splits `data` into pieces of at most CHUNK_BYTES (views, not copies). */
export function* chunksOf(data: Buffer): Generator<Buffer> {
  for (let offset = 0; offset < data.length; offset += CHUNK_BYTES) yield data.subarray(offset, offset + CHUNK_BYTES);
}

// ── relayed WebSockets ──────────────────────────────────────────────────

export type WsOpcode = 'text' | 'binary' | 'ping' | 'pong';

/** A public WebSocket's upgrade as the sidecar sees it (ws_check / ws_connect). */
export interface WsHead {
  /** check_id or connection_id: a UUID. */
  id: string;
  path: string;
  queryString: string;
  /** Only the headers TUNNEL-PROTOCOL.md §7 forwards. */
  headers: Readonly<Record<string, string>>;
}

/** The sidecar's pre-flight answer, or why there was none. */
export type WsCheckResult = { ok: true; supported: boolean; protocol?: string; reason?: string } | { ok: false; failure: RelayFailure };

/** Why a relayed WebSocket could not go on: its sidecar is not there, the back end refused, or the sidecar went away. */
export type WsFailure = 'gone' | 'ws_error' | 'tunnel_disconnected';

/** What the sidecar side tells a public WebSocket. */
export interface WsSink {
  connected(protocol: string | undefined): void;
  frame(opcode: WsOpcode, data: Buffer): void;
  /** The back end closed (ws_closed): the public socket closes with the same code and reason. */
  closed(code: number, reason: string): void;
  failed(failure: WsFailure): void;
}

/** What a public WebSocket tells the sidecar side. */
export interface WsStream {
  frame(opcode: WsOpcode, data: Buffer): void;
  /** The public client closed (ws_close); nothing more comes back. */
  close(code: number, reason: string): void;
}

/** How long the sidecar has for ws_check and for ws_connect (TUNNEL-PROTOCOL.md §7). */
export const WS_SIDECAR_TIMEOUT_MS = 5000;
