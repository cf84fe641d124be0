// `switchboard tunnel`'s settings: each has a --flag and an environment
// variable (the flag wins). Validated once, every problem as one line, then
// frozen; pure (the caller passes argv's values and the environment). The
// token is better passed in SWITCHBOARD_TOKEN: a --token shows in `ps`.
import { readTunnelToken, type TokenFacts } from './token';

export const TUNNEL_SETTINGS = {
  server: { env: 'SWITCHBOARD_SERVER', help: 'the Switchboard node or load balancer: ws://host:port or wss://host' },
  token: { env: 'SWITCHBOARD_TOKEN', help: 'a tunnel token (`switchboard token --tunnel PATH_ID`)' },
  to: { env: 'TUNNEL_TO', help: 'the local back end: http://127.0.0.1:3000 (https:// too; a path is a prefix)' },
  'heartbeat-interval-ms': { env: 'TUNNEL_HEARTBEAT_INTERVAL_MS', help: 'channel heartbeat period (default 30000)' },
  'log-level': { env: 'LOG_LEVEL', help: 'fatal, error, warn, info (default), debug, trace or silent' },
} as const;

export type TunnelSetting = keyof typeof TUNNEL_SETTINGS;

export interface TunnelConfig {
  /** The server's base URL, ws: or wss:, without a query; the socket path is added to it. */
  server: URL;
  token: string;
  tokenFacts: TokenFacts;
  /** The back end's origin, with an optional path prefix. */
  to: URL;
  heartbeatIntervalMs: number;
  logLevel: string;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 30_000;

export type ConfigResult = { ok: true; config: Readonly<TunnelConfig> } | { ok: false; problems: string[] };

/** Settings from `flags` (parsed --flag values) over `env`; every problem found, one line each. */
export function tunnelConfig(flags: Partial<Record<TunnelSetting, string>>, env: NodeJS.ProcessEnv, nowS: number): ConfigResult {
  const problems: string[] = [];
  const value = (name: TunnelSetting) => flags[name] ?? env[TUNNEL_SETTINGS[name].env];
  const describe = (name: TunnelSetting) => `--${name} (${TUNNEL_SETTINGS[name].env})`;
  const required = (name: TunnelSetting): string | undefined => {
    const v = value(name);
    if (v === undefined || v === '') problems.push(`${describe(name)} is required: ${TUNNEL_SETTINGS[name].help}`);
    return v === '' ? undefined : v;
  };

  const server = parseUrl(required('server'), { 'ws:': 'ws:', 'wss:': 'wss:', 'http:': 'ws:', 'https:': 'wss:' });
  if (server === 'bad') problems.push(`${describe('server')} must be a ws://, wss://, http:// or https:// URL without a query`);
  const to = parseUrl(required('to'), { 'http:': 'http:', 'https:': 'https:' });
  if (to === 'bad') problems.push(`${describe('to')} must be an http:// or https:// URL without a query`);

  const token = required('token');
  let tokenFacts: TokenFacts | undefined;
  if (token !== undefined) {
    const read = readTunnelToken(token, nowS);
    if (read.ok) tokenFacts = read.facts;
    else problems.push(`${describe('token')} ${read.problem}`);
  }

  const beat = value('heartbeat-interval-ms') ?? String(DEFAULT_HEARTBEAT_INTERVAL_MS);
  const heartbeatIntervalMs = /^\d+$/.test(beat) ? Number(beat) : NaN;
  if (!(heartbeatIntervalMs >= 10)) problems.push(`${describe('heartbeat-interval-ms')} must be a whole number of milliseconds, at least 10`);
  const logLevel = value('log-level') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`${describe('log-level')} must be one of ${LOG_LEVELS.join(', ')}`);

  if (problems.length > 0 || server === undefined || server === 'bad' || to === undefined || to === 'bad' || token === undefined || tokenFacts === undefined)
    return { ok: false, problems };
  return { ok: true, config: Object.freeze({ server, token, tokenFacts, to, heartbeatIntervalMs, logLevel }) };
}

/** The socket URL: the base's path + /telephone/websocket, the token and Phoenix's protocol version in the query. */
export function socketUrl(server: URL, token: string): string {
  const url = new URL(server.href);
  const base = url.pathname.replace(/\/+$/, '');
  url.pathname = base.endsWith('/telephone/websocket') ? base : `${base}/telephone/websocket`;
  url.search = new URLSearchParams({ token, vsn: '2.0.0' }).toString();
  return url.href;
}

/** The URL as it may be logged: no query, no credentials. */
export function loggableServer(server: URL): string {
  return `${server.protocol}//${server.host}${server.pathname}`;
}

/** The URL with its scheme mapped through `schemes`; undefined when absent, 'bad' when unusable. */
function parseUrl(text: string | undefined, schemes: Record<string, string>): URL | undefined | 'bad' {
  if (text === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'bad';
  }
  const scheme = schemes[url.protocol];
  if (scheme === undefined || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') return 'bad';
  // Setting the protocol between "special" schemes (http ↔ ws) keeps the rest of the URL.
  url.protocol = scheme;
  return url;
}
