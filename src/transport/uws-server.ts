// The uWebSockets.js adapter: with uws-http.ts (its HTTP requests), the only
// code that imports uWS. The rules of uWS live here so no other code has to
// know them:
// - request headers are copied before any await (the request dies with the callback);
// - onAborted is registered before an async handler returns, and nothing is
//   written to an aborted response;
// - WebSocket frames are gathered per socket and written corked at the end of the turn (Outbox);
// - message buffers are only borrowed: handlers decode them synchronously;
// - nothing is added to uWS objects: per-socket state lives in getUserData().
import uWS from 'uWebSockets.js';
import { CLOSE } from '../errors/codes';
import type { Logger } from '../log/logger';
import { loggableUrl } from '../log/logger';
import type { ByteConnection } from './connection';
import { errorReply, type HttpRoute, type StreamRoute, type UpgradeDecision, type WsEndpoint, type WsHandler } from './http-types';
import { UwsExchange } from './uws-exchange';
import { requestInfo, serveHttp, writeReply } from './uws-http';

/** Refuses to run on the package's JavaScript fallback: it is many times slower and not what was tested. */
export function assertNativeUws(): void {
  if (!uWS.App.toString().includes('[native code]'))
    throw new Error(
      `uWebSockets.js did not load its native binary for node ${process.version} (${process.platform}-${process.arch}, ABI ${process.versions.modules}) and fell back to a JavaScript emulation; Switchboard refuses to run on it. Use Node 20 on linux-x64/arm64 (glibc), or reinstall with npm ci.`,
    );
}

const OVERSIZE_HEADROOM = 4;
/** uWS's send() result when it refused the frame (past maxBackpressure). */
const UWS_DROPPED = 2;

interface SocketData<C> {
  /** The upgrade decision's context until open() hands it to the handler; dropped then. */
  context: C | undefined;
  handler?: WsHandler;
  connection?: UwsConnection;
  /** Set when uWS reported the close before open() returned a handler (a socket closed from inside open). */
  closedDuringOpen?: { code: number; reason: string };
}

/**
 * Frames are gathered per socket during an event-loop turn and written at its end, corked: one
 * write syscall per socket per turn instead of one per frame. uWS corks only the socket whose
 * message it is handling, and a relay writes to *other* sockets, so without this every relayed
 * frame, every room member's copy and every frame of a bus batch was a syscall of its own
 * (bench W1 at window 10, W2 and W3 fan-out). The turn ends in setImmediate, after uWS and the
 * bus sockets have been read in the poll phase, so no latency is added beyond the same turn.
 */
class Outbox {
  private pending: UwsConnection[] = [];
  private scheduled = false;

  add(connection: UwsConnection): void {
    this.pending.push(connection);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.flush);
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const connections = this.pending;
    this.pending = [];
    for (const connection of connections) connection.flush();
  };
}

/** A frame of bytes in the queue (text frames are plain strings: the common case costs no wrapper). */
class BytesFrame {
  constructor(
    readonly data: Uint8Array,
    readonly binary: boolean,
  ) {}
}

class UwsConnection implements ByteConnection {
  closed = false;
  /** Text frames a slow-consumer close left unwritten (`unsent`). */
  private unwritten: string[] | undefined;
  /** Frames waiting for the end of the turn; undefined when none (most connections, most of the time). */
  private queued: (string | BytesFrame)[] | undefined;

  constructor(
    private readonly ws: uWS.WebSocket<SocketData<unknown>>,
    private readonly outbox: Outbox,
    private readonly maxBufferedBytes: number,
    private readonly onSlowConsumer: () => void,
  ) {}

  send(text: string): void {
    this.enqueue(text);
  }

  sendBytes(data: Uint8Array, binary: boolean): void {
    this.enqueue(new BytesFrame(data, binary));
  }

  ping(data: Uint8Array): void {
    if (this.closed) return;
    this.ws.cork(() => {
      if (this.writeQueued()) this.ws.ping(data);
    });
  }

  private enqueue(frame: string | BytesFrame): void {
    if (this.closed) {
      // Closing (uWS may report the close only later): kept for `unsent`, a resumable session's.
      if (typeof frame === 'string') (this.unwritten ??= []).push(frame);
      return;
    }
    if (this.queued !== undefined) return void this.queued.push(frame);
    this.queued = [frame];
    this.outbox.add(this);
  }

  /** Writes the queued frames in one corked write (called by the outbox at the end of the turn). */
  flush(): void {
    const queued = this.queued;
    if (queued === undefined || this.closed) return void (this.queued = undefined);
    // One frame is one write either way: skip cork's call back into JavaScript (~0.3 µs per
    // relayed message at window 1, where most turns carry one frame per socket).
    if (queued.length === 1) this.writeQueued();
    else this.ws.cork(() => this.writeQueued());
  }

  close(close: { readonly code: number; readonly reason: string }): void {
    if (this.closed) return;
    // Frames sent before the close go out before the close frame.
    this.ws.cork(() => {
      if (this.writeQueued()) this.end(close);
    });
  }

  /** Writes the queued frames; false when the socket was closed as a slow consumer meanwhile. */
  private writeQueued(): boolean {
    const frames = this.queued;
    this.queued = undefined;
    if (frames === undefined) return true;
    for (let i = 0; i < frames.length; i++) {
      const frame = frames[i]!;
      const result = typeof frame === 'string' ? this.ws.send(frame, false) : this.ws.send(frame.data, frame.binary);
      // uWS drops the frame past maxBackpressure; a buffer over our limit is a slow consumer either way (SPEC 4010).
      if (result === UWS_DROPPED || this.ws.getBufferedAmount() > this.maxBufferedBytes) {
        const rest = frames.slice(result === UWS_DROPPED ? i : i + 1);
        this.unwritten = rest.filter((f): f is string => typeof f === 'string');
        this.onSlowConsumer();
        this.end(CLOSE.slow_consumer);
        return false;
      }
    }
    return true;
  }

  unsent(): string[] {
    const frames = this.unwritten ?? [];
    this.unwritten = undefined;
    return frames;
  }

  /** The socket is gone (closed by either side): nothing more is written. */
  markClosed(): void {
    this.closed = true;
    // Frames of this turn the socket will never write (the client vanished): `unsent` hands them over.
    if (this.queued !== undefined) (this.unwritten ??= []).push(...this.queued.filter((f): f is string => typeof f === 'string'));
    this.queued = undefined;
  }

  private end(close: { readonly code: number; readonly reason: string }): void {
    this.closed = true;
    this.queued = undefined;
    this.ws.end(close.code, close.reason);
  }
}

/** TLS for the listener: uWS's SSLApp reads the PEM files itself (checked beforehand by config/tls.ts). */
export interface ListenerTls {
  certFile: string;
  keyFile: string;
  passphrase?: string;
}

/** uWS throws a bare "App construction failed" when OpenSSL refuses the files; say which files. */
function sslApp(tls: ListenerTls): uWS.TemplatedApp {
  const options: uWS.AppOptions = { cert_file_name: tls.certFile, key_file_name: tls.keyFile };
  if (tls.passphrase !== undefined) options.passphrase = tls.passphrase;
  try {
    return uWS.SSLApp(options);
  } catch (error) {
    throw new Error(`TLS: uWebSockets.js could not load the certificate ${tls.certFile} and key ${tls.keyFile}`, { cause: error });
  }
}

export interface UwsServerOptions {
  logger: Logger;
  /** Set: the listener speaks HTTPS and WSS only (SSLApp); unset: plain HTTP and WS (App). */
  tls?: ListenerTls;
  onSlowConsumer?: () => void;
  /**
   * Hosts that belong to the catch-all routes whatever their path (tunnel subdomains,
   * `<path_id>.<TUNNEL_DOMAIN>`): the server's own routes pass such requests on (uWS's yield) to
   * the `/*` routes.
   */
  isVirtualHost?: (host: string) => boolean;
}

export class UwsServer {
  private readonly app: uWS.TemplatedApp;
  private listenSocket: uWS.us_listen_socket | undefined;
  private readonly logger: Logger;
  private readonly onSlowConsumer: () => void;
  private readonly outbox = new Outbox();
  private readonly isVirtualHost: (host: string) => boolean;

  constructor(options: UwsServerOptions) {
    this.app = options.tls === undefined ? uWS.App() : sslApp(options.tls);
    this.logger = options.logger;
    this.onSlowConsumer = options.onSlowConsumer ?? (() => undefined);
    this.isVirtualHost = options.isVirtualHost ?? (() => false);
  }

  route(route: HttpRoute): this {
    this.app[route.method](route.pattern, (res, req) => {
      if (this.yieldsToVirtualHost(route.pattern, req)) return;
      serveHttp(route, res, req, this.logger);
    });
    return this;
  }

  /** A route that reads the body and writes the response as they stream (HttpExchange). */
  stream(route: StreamRoute): this {
    this.app.any(route.pattern, (res, req) => {
      if (this.yieldsToVirtualHost(route.pattern, req)) return;
      route.serve(new UwsExchange(res, req));
    });
    return this;
  }

  /** A request for a virtual host reaching one of the server's own routes: passed on to the catch-all. */
  private yieldsToVirtualHost(pattern: string, req: uWS.HttpRequest): boolean {
    if (pattern === '/*' || !this.isVirtualHost(req.getHeader('host'))) return false;
    req.setYield(true);
    return true;
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
      maxPayloadLength: endpoint.maxPayloadBytes * (endpoint.oversizeHeadroom ?? OVERSIZE_HEADROOM),
      idleTimeout: endpoint.idleTimeoutS,
      // uWS drops frames past this; UwsConnection closes the consumer with 4010 first.
      maxBackpressure: endpoint.maxBufferedBytes + endpoint.maxPayloadBytes,
      closeOnBackpressureLimit: 0,
      sendPingsAutomatically: true,
      compression: uWS.DISABLED,
      upgrade: (res, req, context) => {
        if (!this.yieldsToVirtualHost(endpoint.pattern, req)) this.upgrade(endpoint, res, req, context);
      },
      open: (ws) => {
        const data = ws.getUserData();
        const connection = new UwsConnection(ws, this.outbox, endpoint.maxBufferedBytes, this.onSlowConsumer);
        data.connection = connection;
        const handler = endpoint.open(connection, data.context as C);
        data.handler = handler;
        data.context = undefined;
        // uWS runs the close handler inside end(): a socket the endpoint closed at once (a refused
        // token) was gone before its handler existed. Tell the handler now, or its slot leaks.
        if (data.closedDuringOpen !== undefined) return handler.onClose(data.closedDuringOpen.code, data.closedDuringOpen.reason);
        // uWS corks the upgrade response while open runs: what the handler sent (the welcome)
        // leaves in the same write as the 101, one syscall and packet fewer per connect.
        connection.flush();
      },
      message: (ws, message, isBinary) => {
        const data = ws.getUserData();
        if (message.byteLength > endpoint.maxPayloadBytes) data.connection?.close(CLOSE.too_large);
        else data.handler?.onMessage(message, isBinary);
      },
      ping: (ws, message) => ws.getUserData().handler?.onPing?.(message),
      pong: (ws, message) => ws.getUserData().handler?.onPong?.(message),
      close: (ws, code, message) => {
        const data = ws.getUserData();
        data.connection?.markClosed();
        if (data.handler === undefined) data.closedDuringOpen = { code, reason: Buffer.from(message).toString('utf8') };
        else data.handler.onClose(code, Buffer.from(message).toString('utf8'));
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
    const info = requestInfo(res, req, endpoint.upgradeHeaders);
    const key = req.getHeader('sec-websocket-key');
    const protocol = req.getHeader('sec-websocket-protocol');
    const extensions = req.getHeader('sec-websocket-extensions');
    const answer = (decision: UpgradeDecision<C>) => {
      if (decision.accept) res.upgrade<SocketData<C>>({ context: decision.context }, key, decision.protocol ?? protocol, extensions, context);
      else writeReply(res, decision.reply);
    };
    const fail = (error: unknown) => {
      this.logger.error({ err: error, path: loggableUrl(info.path) }, 'upgrade handler failed');
      return errorReply('internal', 'internal error');
    };
    let decision: ReturnType<WsEndpoint<C>['upgrade']>;
    try {
      decision = endpoint.upgrade(info);
    } catch (error) {
      return writeReply(res, fail(error));
    }
    // Decided now (the usual case): answered inside uWS's callback, which corks it, and the
    // client cannot have gone away meanwhile — no onAborted, no promise (~7 µs per connect).
    if (!(decision instanceof Promise)) return answer(decision);
    let aborted = false;
    res.onAborted(() => (aborted = true));
    decision.then(
      (decided) => {
        if (!aborted) res.cork(() => answer(decided));
        else if (decided.accept) endpoint.abandoned?.(decided.context);
      },
      (error: unknown) => {
        const reply = fail(error);
        if (!aborted) res.cork(() => writeReply(res, reply));
      },
    );
  }
}
