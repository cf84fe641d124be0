// The HTTP side of the uWebSockets.js adapter: request snapshots, bodies and
// replies. A route's authorize() is asked before any of the body is read, so a
// refused request costs no body; the body then arrives whole or not at all
// (413 past the route's limit), and handlers never see uWS objects.
import type uWS from 'uWebSockets.js';
import type { Logger } from '../log/logger';
import { whenReady } from '../util/maybe-promise';
import { errorReply, type HttpAuthorizer, type HttpReply, type HttpRoute, type RequestInfo } from './http-types';

/** Serves one request on `route`: authorize from the headers, read the body if the route takes one, handle, reply. */
export function serveHttp(route: HttpRoute, res: uWS.HttpResponse, req: uWS.HttpRequest, logger: Logger): void {
  const info = requestInfo(res, req);
  let aborted = false;
  res.onAborted(() => (aborted = true));
  const limit = route.maxBodyBytes;
  const hasBody = limit !== undefined && info.method !== 'get' && info.method !== 'head';
  // A request answered before its whole body was read has the rest still on the wire: the
  // connection is closed rather than made to parse it.
  let unread = hasBody;
  const respond = (reply: HttpReply) => {
    if (!aborted) res.cork(() => writeReply(res, reply, unread));
    aborted = true;
  };
  const failed = (error: unknown) => {
    logger.error({ err: error, path: info.path }, 'http handler failed');
    respond(errorReply('internal', 'internal error'));
  };
  const run = (body: Buffer) => {
    if (aborted) return;
    let reply: ReturnType<HttpRoute['handle']>;
    try {
      reply = route.handle(info, body);
    } catch (error) {
      return failed(error);
    }
    whenReady(reply, respond, failed);
  };
  let verdict: ReturnType<HttpAuthorizer>;
  try {
    verdict = route.authorize?.(info);
  } catch (error) {
    return failed(error);
  }
  if (!hasBody) return whenReady(verdict, (refused) => (refused === undefined ? run(Buffer.alloc(0)) : respond(refused)), failed);

  const tooLarge = () => respond(errorReply('payload_too_large', `body over ${limit} bytes`));
  const declaredTooLarge = Number(info.headers['content-length'] ?? 0) > limit;
  const readBody = (onBody: (body: Buffer) => void) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.onData((chunk, isLast) => {
      if (aborted) return;
      size += chunk.byteLength;
      if (size > limit) return tooLarge();
      // Copy: uWS reuses the chunk's memory after this callback.
      chunks.push(Buffer.from(new Uint8Array(chunk)));
      if (!isLast) return;
      unread = false;
      onBody(Buffer.concat(chunks, size));
    });
  };
  if (!(verdict instanceof Promise)) {
    if (verdict !== undefined) return respond(verdict);
    if (declaredTooLarge) return tooLarge();
    return readBody(run);
  }
  // The verdict comes later (a JWKS fetch). uWS drops body bytes that no onData handler takes,
  // so the reader is attached now and the socket paused until the verdict: what arrives
  // meanwhile is at most what one socket read already held, and it waits for the verdict.
  let authorized = false;
  let early: Buffer | undefined;
  if (!declaredTooLarge) readBody((body) => (authorized ? run(body) : (early = body)));
  res.pause();
  verdict.then((refused) => {
    if (aborted) return;
    if (refused !== undefined) return respond(refused);
    if (declaredTooLarge) return tooLarge();
    authorized = true;
    if (early !== undefined) run(early);
    else res.resume();
  }, failed);
}

/**
 * A snapshot of the request; `only` limits the copied headers to those a handler reads (an upgrade
 * reads two or three of a dozen), though every line is looked at to find repeats. The peer address
 * is read when first asked for: most upgrades never need it (no per-IP limit), and uWS's text form
 * costs a copy.
 */
/** The peer address arrives as an ArrayBuffer of ASCII text; a decoder made once reads it faster than a Buffer per call. */
const addressText = new TextDecoder();

export function requestInfo(res: uWS.HttpResponse, req: uWS.HttpRequest, only?: readonly string[]): RequestInfo {
  let peerAddress: string | undefined;
  return {
    method: req.getMethod(),
    path: req.getUrl(),
    query: req.getQuery() ?? '',
    headers: copyHeaders(req, only),
    get peerAddress() {
      return (peerAddress ??= addressText.decode(res.getRemoteAddressAsText()));
    },
  };
}

/**
 * The request's headers (or only those named in `only`), repeated lines joined with ", " in the
 * order they came (RFC 9110 §5.3). uWS's getHeader returns the first line only: behind HAProxy's
 * `option forwardfor`, X-Forwarded-For is the client's own line followed by the one the proxy
 * appended, and reading the first would let the client choose its address. Header names are
 * client strings, so the map has no prototype (`__proto__` and `constructor` are plain names).
 */
export function copyHeaders(req: Pick<uWS.HttpRequest, 'forEach'>, only: readonly string[] | undefined): Record<string, string> {
  const headers = Object.create(null) as Record<string, string>;
  req.forEach((name, value) => {
    if (only !== undefined && !only.includes(name)) return;
    const earlier = headers[name];
    headers[name] = earlier === undefined ? value : `${earlier}, ${value}`;
  });
  return headers;
}

export function writeReply(res: uWS.HttpResponse, reply: HttpReply, closeConnection = false): void {
  res.writeStatus(statusLine(reply.status));
  for (const [name, value] of Object.entries(reply.headers ?? {})) res.writeHeader(name, value);
  res.end(reply.body, closeConnection);
}

const REASONS: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  202: 'Accepted',
  204: 'No Content',
  206: 'Partial Content',
  301: 'Moved Permanently',
  302: 'Found',
  304: 'Not Modified',
  307: 'Temporary Redirect',
  308: 'Permanent Redirect',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Payload Too Large',
  409: 'Conflict',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export function statusLine(status: number): string {
  return `${status} ${REASONS[status] ?? 'Status'}`;
}
