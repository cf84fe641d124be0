// The uWebSockets.js adapter: the only file that imports uWS. The rules of
// uWS live here so no other code has to know them:
// - request headers are copied before any await (the request dies with the callback);
// - onAborted is registered before an async handler returns, and nothing is
//   written to an aborted response;
// - writes from outside a uWS callback (after an await, timers, bus) are corked;
// - message buffers are only borrowed: handlers decode them synchronously;
// - nothing is added to uWS objects: per-socket state lives in getUserData().
import uWS from 'uWebSockets.js';
import { CLOSE, type Close } from '../errors/codes';
import type { Logger } from '../log/logger';
import { loggableUrl } from '../log/logger';
import { SendResult, type Connection } from './connection';
import { errorReply, type HttpReply, type HttpRoute, type RequestInfo, type WsEndpoint, type WsHandler } from './http-types';

/** Refuses to run on the package's JavaScript fallback: it is many times slower and not what was tested. */
export function assertNativeUws(): void {
  if (!uWS.App.toString().includes('[native code]'))
    throw new Error(
      `uWebSockets.js did not load its native binary for node ${process.version} (${process.platform}-${process.arch}, ABI ${process.versions.modules}) and fell back to a JavaScript emulation; Switchboard refuses to run on it. Use Node 20 on linux-x64/arm64 (glibc), or reinstall with npm ci.`,
    );
}

const OVERSIZE_HEADROOM = 4;

interface SocketData<C> {
  context: C;
  handler?: WsHandler;
  connection?: UwsConnection;
}

class UwsConnection implements Connection {
  closed = false;

  constructor(
    private readonly ws: uWS.WebSocket<SocketData<unknown>>,
    private readonly maxBufferedBytes: number,
    private readonly onSlowConsumer: () => void,
  ) {}

  send(text: string): SendResult {
    if (this.closed) return SendResult.Dropped;
    const result = this.ws.send(text, false) as SendResult;
    // uWS drops the frame (2) past maxBackpressure; a buffer over our limit is a slow consumer either way (SPEC 4010).
    if (result === SendResult.Dropped || this.ws.getBufferedAmount() > this.maxBufferedBytes) {
      this.onSlowConsumer();
      this.close(CLOSE.slow_consumer);
    }
    return result;
  }

  cork(fn: () => void): void {
    if (this.closed) return;
    this.ws.cork(fn);
  }

  close(close: Close): void {
    if (this.closed) return;
    this.closed = true;
    this.ws.end(close.code, close.reason);
  }
}

export interface UwsServerOptions {
  logger: Logger;
  onSlowConsumer?: () => void;
}

export class UwsServer {
  private readonly app = uWS.App();
  private listenSocket: uWS.us_listen_socket | undefined;
  private readonly logger: Logger;
  private readonly onSlowConsumer: () => void;

  constructor(options: UwsServerOptions) {
    this.logger = options.logger;
    this.onSlowConsumer = options.onSlowConsumer ?? (() => undefined);
  }

  route(route: HttpRoute): this {
    this.app[route.method](route.pattern, (res, req) => this.serveHttp(route, res, req));
    return this;
  }

  /** Answers every path no route matched (404 JSON by default). */
  fallback(handle: HttpRoute['handle']): this {
    return this.route({ method: 'any', pattern: '/*', handle });
  }

  websocket<C>(endpoint: WsEndpoint<C>): this {
    // uWS cuts frames over its own limit without a close frame (the client sees 1006). The
    // contract wants 1009, so uWS may buffer up to 4× the limit and we close over-limit frames
    // ourselves with 1009; only absurd frames (over 4×) are cut abruptly, unbuffered.
    this.app.ws<SocketData<C>>(endpoint.pattern, {
      maxPayloadLength: endpoint.maxPayloadBytes * OVERSIZE_HEADROOM,
      idleTimeout: endpoint.idleTimeoutS,
      // uWS drops frames past this; UwsConnection closes the consumer with 4010 first.
      maxBackpressure: endpoint.maxBufferedBytes + endpoint.maxPayloadBytes,
      closeOnBackpressureLimit: 0,
      sendPingsAutomatically: true,
      compression: uWS.DISABLED,
      upgrade: (res, req, context) => this.upgrade(endpoint, res, req, context),
      open: (ws) => {
        const data = ws.getUserData();
        const connection = new UwsConnection(ws, endpoint.maxBufferedBytes, this.onSlowConsumer);
        data.connection = connection;
        data.handler = endpoint.open(connection, data.context);
      },
      message: (ws, message, isBinary) => {
        const data = ws.getUserData();
        if (message.byteLength > endpoint.maxPayloadBytes) data.connection?.close(CLOSE.too_large);
        else data.handler?.message(message, isBinary);
      },
      close: (ws, code) => {
        const data = ws.getUserData();
        if (data.connection !== undefined) data.connection.closed = true;
        data.handler?.close(code);
      },
    });
    return this;
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.app.listen(host, port, (socket) => {
        if (socket === false) return reject(new Error(`could not listen on ${host}:${port}`));
        this.listenSocket = socket;
        resolve(uWS.us_socket_local_port(socket));
      });
    });
  }

  /** Stops accepting connections; open ones are closed by their owners. */
  stopListening(): void {
    if (this.listenSocket !== undefined) uWS.us_listen_socket_close(this.listenSocket);
    this.listenSocket = undefined;
  }

  private upgrade<C>(endpoint: WsEndpoint<C>, res: uWS.HttpResponse, req: uWS.HttpRequest, context: uWS.us_socket_context_t): void {
    const info = requestInfo(res, req);
    const key = req.getHeader('sec-websocket-key');
    const protocol = req.getHeader('sec-websocket-protocol');
    const extensions = req.getHeader('sec-websocket-extensions');
    let aborted = false;
    res.onAborted(() => (aborted = true));
    const finish = (decision: Awaited<ReturnType<WsEndpoint<C>['upgrade']>>) => {
      if (aborted) {
        if (decision.accept) endpoint.abandoned?.(decision.context);
        return;
      }
      res.cork(() => {
        if (decision.accept) res.upgrade<SocketData<C>>({ context: decision.context }, key, protocol, extensions, context);
        else writeReply(res, decision.reply);
      });
    };
    const fail = (error: unknown) => {
      this.logger.error({ err: error, path: loggableUrl(info.path) }, 'upgrade handler failed');
      if (!aborted) res.cork(() => writeReply(res, errorReply('internal', 'internal error')));
    };
    try {
      const decision = endpoint.upgrade(info);
      if (decision instanceof Promise) decision.then(finish, fail);
      else finish(decision);
    } catch (error) {
      fail(error);
    }
  }

  private serveHttp(route: HttpRoute, res: uWS.HttpResponse, req: uWS.HttpRequest): void {
    const info = requestInfo(res, req);
    let aborted = false;
    res.onAborted(() => (aborted = true));
    // closeConnection: after a refused body the rest of it is still on the wire; drop the connection instead of parsing it.
    const respond = (reply: HttpReply, closeConnection = false) => {
      if (!aborted) res.cork(() => writeReply(res, reply, closeConnection));
      aborted = true;
    };
    const run = (body: Buffer) => {
      try {
        const reply = route.handle(info, body);
        if (reply instanceof Promise)
          reply.then(respond, (error: unknown) => {
            this.logger.error({ err: error, path: info.path }, 'http handler failed');
            respond(errorReply('internal', 'internal error'));
          });
        else respond(reply);
      } catch (error) {
        this.logger.error({ err: error, path: info.path }, 'http handler failed');
        respond(errorReply('internal', 'internal error'));
      }
    };
    const limit = route.maxBodyBytes;
    if (limit === undefined || info.method === 'get' || info.method === 'head') return run(Buffer.alloc(0));
    const declared = Number(info.headers['content-length'] ?? 0);
    if (declared > limit) return respond(errorReply('payload_too_large', `body over ${limit} bytes`), true);
    const chunks: Buffer[] = [];
    let size = 0;
    res.onData((chunk, isLast) => {
      if (aborted) return;
      size += chunk.byteLength;
      if (size > limit) return respond(errorReply('payload_too_large', `body over ${limit} bytes`), true);
      // Copy: uWS reuses the chunk's memory after this callback.
      chunks.push(Buffer.from(new Uint8Array(chunk)));
      if (isLast) run(Buffer.concat(chunks, size));
    });
  }
}

function requestInfo(res: uWS.HttpResponse, req: uWS.HttpRequest): RequestInfo {
  const headers: Record<string, string> = {};
  req.forEach((name, value) => {
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  });
  return {
    method: req.getMethod(),
    path: req.getUrl(),
    query: req.getQuery() ?? '',
    headers,
    peerAddress: Buffer.from(res.getRemoteAddressAsText()).toString(),
  };
}

function writeReply(res: uWS.HttpResponse, reply: HttpReply, closeConnection = false): void {
  res.writeStatus(statusLine(reply.status));
  for (const [name, value] of Object.entries(reply.headers ?? {})) res.writeHeader(name, value);
  res.end(reply.body, closeConnection);
}

const REASONS: Record<number, string> = {
  200: 'OK',
  202: 'Accepted',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Payload Too Large',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

function statusLine(status: number): string {
  return `${status} ${REASONS[status] ?? 'Status'}`;
}
