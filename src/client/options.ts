// The options of SwitchboardClient, with their defaults, checked once.
import { backoffOptions, type BackoffOptions } from './backoff';
import { globalWebSocket, type WebSocketConstructor } from './platform';
import type { TokenProvider } from './token';

export interface ClientOptions {
  /** The /ws endpoint, e.g. `wss://switchboard.example.com/ws`. Give `url` or `urls`. */
  url?: string;
  /** Several endpoints (nodes, or regions): each reconnect goes to the next one. */
  urls?: readonly string[];
  /** A fixed token, or a provider called when a (new) token is needed. Only a provider allows refreshes. */
  token: string | TokenProvider;
  /** Defaults to `globalThis.WebSocket`; in Node 20 pass the `ws` package's `WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** Handed to the token provider (the device id comes from the token's `device_id` claim). */
  device?: string;
  backoff?: Partial<BackoffOptions>;
  /** How long a request (send, join, watch, …) waits for its answer. Default 10 000. */
  sendTimeoutMs?: number;
  /** Refresh the token this long before it expires (less for short tokens: half their remaining life). Default 60 000. */
  refreshMarginMs?: number;
}

export interface ResolvedOptions {
  urls: readonly string[];
  token: string | TokenProvider;
  WebSocket: WebSocketConstructor;
  device: string | undefined;
  backoff: BackoffOptions;
  sendTimeoutMs: number;
  refreshMarginMs: number;
}

export function resolveOptions(options: ClientOptions): ResolvedOptions {
  const urls = options.urls ?? (options.url === undefined ? [] : [options.url]);
  if (urls.length === 0) throw new TypeError('SwitchboardClient: give `url` or a non-empty `urls`');
  const WebSocket = options.WebSocket ?? globalWebSocket();
  if (WebSocket === undefined) throw new TypeError('SwitchboardClient: no global WebSocket here; pass one as the `WebSocket` option (in Node: the `ws` package)');
  return {
    urls: [...urls],
    token: options.token,
    WebSocket,
    device: options.device,
    backoff: backoffOptions(options.backoff),
    sendTimeoutMs: options.sendTimeoutMs ?? 10_000,
    refreshMarginMs: options.refreshMarginMs ?? 60_000,
  };
}
