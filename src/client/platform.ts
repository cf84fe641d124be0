// What the client takes from its platform, typed structurally so that the SDK
// compiles without the DOM or Node type libraries (tsconfig.client.json checks
// it with neither): it runs wherever these few globals exist — browsers, Deno,
// Node 20 (which has no global WebSocket: pass the `ws` package's class).

/**
 * The part of a WebSocket the client uses; the browser's WebSocket and `ws`
 * both fit. The handler parameters are `never` because the client only
 * assigns handlers (its own, reading `data`, `code` and `reason` defensively);
 * declaring the events precisely would make each library's event class a
 * mismatch.
 */
export interface SocketLike {
  readonly readyState: number;
  onopen: ((event: never) => void) | null;
  onmessage: ((event: never) => void) | null;
  onclose: ((event: never) => void) | null;
  onerror: ((event: never) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => SocketLike;

export const SOCKET_OPEN = 1;

export type TimerHandle = unknown;

interface PlatformGlobals {
  setTimeout(callback: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  atob(data: string): string;
  queueMicrotask(callback: () => void): void;
  WebSocket?: WebSocketConstructor;
}

/** Read at each call, not cached: test doubles (node:test mock.timers) replace the globals. */
const platform = (): PlatformGlobals => {
  // Through `unknown`: with the Node or DOM library these globals are typed already, without them not.
  const globals: unknown = globalThis;
  return globals as PlatformGlobals;
};

/** Longest delay timers take (2^31 - 1 ms, ~24.8 days); a longer one would fire at once. */
const MAX_DELAY_MS = 2_147_483_647;

export const setTimer = (callback: () => void, ms: number): TimerHandle => platform().setTimeout(callback, Math.min(ms, MAX_DELAY_MS));
export const clearTimer = (handle: TimerHandle): void => {
  if (handle !== undefined) platform().clearTimeout(handle);
};
export const decodeBase64 = (data: string): string => platform().atob(data);
export const queueTask = (callback: () => void): void => platform().queueMicrotask(callback);
export const globalWebSocket = (): WebSocketConstructor | undefined => platform().WebSocket;
