// What the HTTP and WebSocket handlers see of a request, without uWebSockets.js:
// plain snapshots taken synchronously (uWS request objects die at the first
// await), and plain replies the adapter writes.
import { HTTP_ERRORS, type HttpErrorCode } from '../errors/codes';
import type { ByteConnection } from './connection';

export interface RequestInfo {
  /** Lowercase method. */
  method: string;
  /** Path without the query. */
  path: string;
  /** Raw query string without `?` (may hold a token: never log it). */
  query: string;
  /**
   * Lowercase names; a header sent on several lines is one entry, its lines joined with ", " in
   * order. No prototype: a client may name a header `__proto__` or `constructor`.
   */
  headers: Readonly<Record<string, string>>;
  /**
   * The socket peer's address as text (used for limits only; never stored). Read lazily, and only
   * valid during the synchronous part of a handler: read it before any await.
   */
  readonly peerAddress: string;
}

export interface HttpReply {
  status: number;
  headers?: Readonly<Record<string, string>>;
  body: string | Uint8Array;
}

export type HttpHandler = (request: RequestInfo, body: Buffer) => HttpReply | Promise<HttpReply>;

/** Undefined lets the request through; a reply refuses it. */
export type HttpAuthorizer = (request: RequestInfo) => HttpReply | undefined | Promise<HttpReply | undefined>;

export interface HttpRoute {
  method: 'get' | 'post' | 'any';
  pattern: string;
  /** Bodies larger than this get 413 before the handler runs (default: no body read). */
  maxBodyBytes?: number;
  /**
   * Decides from the request line and headers alone, before any of the body is read: a refused
   * request costs the server no body (the connection is closed on it, unread). Errors are 500.
   */
  authorize?: HttpAuthorizer;
  handle: HttpHandler;
}

/**
 * A request served as it streams (the tunnel relay): the body is read chunk by chunk with
 * pause/resume, and the response written chunk by chunk with back-pressure, so a 100 MiB body
 * never sits whole in memory. The adapter corks every write (they come from timers and Redis).
 */
export interface HttpExchange {
  readonly request: RequestInfo;
  /** The client went away, or the response ended: nothing more may be written. */
  readonly finished: boolean;
  /** Called once when the client goes away before the response ended (never after it ended). */
  onAborted(callback: () => void): void;
  /** Starts reading the body; each chunk is a copy. GET and HEAD have none: `last` comes at once, empty. */
  readBody(onChunk: (chunk: Buffer, last: boolean) => void): void;
  pauseBody(): void;
  resumeBody(): void;
  /**
   * The status and headers; the body follows with write/end. With `contentLength` the response is
   * framed by it (tryEnd), else chunked. `headOnly` (HEAD, 204, 304): no body follows, and
   * contentLength is only reported.
   */
  writeHead(status: number, headers: readonly (readonly [string, string])[], framing: { contentLength?: number; headOnly?: boolean }): void;
  /** Writes part of the body; false when the client's socket is full (wait for onDrained before writing more). */
  write(chunk: Uint8Array): boolean;
  /** Called each time the client's socket took what was buffered. */
  onDrained(callback: () => void): void;
  end(): void;
  /** A whole response at once (errors). */
  reply(reply: HttpReply): void;
  /** Cuts the connection: a failure after the head went out, when no status can tell it. */
  abort(): void;
}

export interface StreamRoute {
  pattern: string;
  serve(exchange: HttpExchange): void;
}

/** Upgrades with `protocol`: the subprotocol to answer with (the client's header as sent when absent). */
export type UpgradeDecision<C> = { accept: true; context: C; protocol?: string } | { accept: false; reply: HttpReply };

/** One open socket's handler; a session object implements it itself (no closures per connection). */
export interface WsHandler {
  /** `data` is only valid during the call: copy or decode it synchronously. */
  onMessage(data: ArrayBuffer, isBinary: boolean): void;
  /** The socket is closed (either side); nothing can be written any more. */
  onClose(code: number, reason: string): void;
  /** A ping or pong from the client (uWS answers pings itself; a relay passes them on). */
  onPing?(data: ArrayBuffer): void;
  onPong?(data: ArrayBuffer): void;
}

export interface WsEndpoint<C> {
  pattern: string;
  maxPayloadBytes: number;
  /**
   * How many times maxPayloadBytes uWS may buffer before it cuts a frame without a close frame
   * (default 4: frames a little over the limit get a proper 1009). An endpoint whose limit is
   * already large (a sidecar's 100 MiB responses) sets 1 rather than buffer 400 MiB.
   */
  oversizeHeadroom?: number;
  idleTimeoutS: number;
  maxBufferedBytes: number;
  /** The request headers `upgrade` reads (lowercase); only these are copied into RequestInfo. */
  upgradeHeaders: readonly string[];
  /** Answered synchronously when it can be: no promise and no abort bookkeeping then (bench W5). */
  upgrade(request: RequestInfo): UpgradeDecision<C> | Promise<UpgradeDecision<C>>;
  open(connection: ByteConnection, context: C): WsHandler;
  /** The client went away between an accepting decision and the upgrade: undo what `upgrade` reserved. */
  abandoned?(context: C): void;
}

export const jsonReply = (status: number, body: unknown, headers?: Record<string, string>): HttpReply => ({
  status,
  headers: { 'content-type': 'application/json', ...headers },
  body: JSON.stringify(body),
});

/** Every HTTP error body is `{"error":"<code>","message":"..."}` (SPEC §1); the status comes from the one table of codes. */
export const errorReply = (error: HttpErrorCode, message: string): HttpReply => jsonReply(HTTP_ERRORS[error], { error, message });

/** `name`'s value in a query string as URLSearchParams gives it, without parsing the whole query when nothing is escaped. */
export function queryParam(query: string, name: string): string | undefined {
  if (query.includes('%') || query.includes('+')) return new URLSearchParams(query).get(name) ?? undefined;
  for (const pair of query.split('&')) {
    if (pair === name) return '';
    if (pair.startsWith(name) && pair.charCodeAt(name.length) === 61 /* = */) return pair.slice(name.length + 1);
  }
  return undefined;
}
