// What a public request to a tunnel becomes, and what a sidecar's response
// becomes for the public client (SPEC §5, TUNNEL-PROTOCOL.md §6): which path a
// request is for, the path it is relayed with (no traversal), and the headers
// each way (hop-by-hop ones dropped, as fastify-reply-from and nginx do; the
// X-Forwarded-* trio added). Pure functions, no I/O.
import { connectionOptions, HOP_BY_HOP } from '../http/hop-by-hop';
import { PATH_ID_PATTERN } from '../protocol/names';

/**
 * Headers the relay writes itself: the framing (a sidecar's Content-Length may describe a body it
 * re-encoded), and Date, which uWS adds to every response (a second one would be a duplicate).
 */
const FRAMING: ReadonlySet<string> = new Set(['content-length', 'date']);

export interface TunnelAddress {
  pathId: string;
  /** The path relayed to the sidecar, starting with `/` (`/` when empty). */
  path: string;
}

export type TargetResult = { ok: true; target: TunnelAddress } | { ok: false; status: 400 | 404; message: string };

/**
 * The tunnel a public request is for: `/call/<path_id>/<rest>`, or any path on host
 * `<path_id>.<tunnelDomain>` when a tunnel domain is set. 404 when it names none; 400 when the
 * relayed path would climb out of the mount (`..` as a segment, written plainly or percent-encoded).
 */
export function tunnelTarget(url: string, host: string | undefined, tunnelDomain: string | undefined): TargetResult {
  const bySubdomain = tunnelDomain === undefined || host === undefined ? undefined : subdomainPathId(host, tunnelDomain);
  let pathId: string;
  let rest: string;
  if (bySubdomain !== undefined) {
    pathId = bySubdomain;
    rest = url;
  } else {
    if (!url.startsWith('/call/')) return { ok: false, status: 404, message: 'no such endpoint' };
    const slash = url.indexOf('/', 6);
    pathId = url.slice(6, slash === -1 ? undefined : slash);
    rest = slash === -1 ? '/' : url.slice(slash);
  }
  if (!PATH_ID_PATTERN.test(pathId)) return { ok: false, status: 404, message: 'not a tunnel path' };
  const path = rest === '' ? '/' : rest;
  // A request-target in absolute form or `*` names no path under the mount.
  if (!path.startsWith('/')) return { ok: false, status: 400, message: 'the path must start with "/"' };
  if (climbs(path)) return { ok: false, status: 400, message: 'the path may not contain ".." segments' };
  return { ok: true, target: { pathId, path } };
}

/** Whether requests for `host` go to a tunnel whatever their path (`<path_id>.<TUNNEL_DOMAIN>`). */
export function isTunnelHost(host: string, tunnelDomain: string | undefined): boolean {
  if (tunnelDomain === undefined) return false;
  const pathId = subdomainPathId(host, tunnelDomain);
  return pathId !== undefined && PATH_ID_PATTERN.test(pathId);
}

function subdomainPathId(host: string, tunnelDomain: string): string | undefined {
  const name = host.toLowerCase().replace(/:\d+$/, '');
  const suffix = `.${tunnelDomain.toLowerCase()}`;
  return name.endsWith(suffix) && name.length > suffix.length ? name.slice(0, -suffix.length) : undefined;
}

/**
 * Whether a segment of the path is `..` once percent-decoded (`%2e%2e`, `.%2E`), or a backslash
 * could make one, or a URL parser would: WHATWG URL drops tabs and newlines (`.\t.` is `..`), trims
 * controls and spaces off the ends of a URL (`/.. ` is `/..`) and ends the path at `#`.
 */
function climbs(path: string): boolean {
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return true; // malformed escapes: refuse rather than guess what a backend makes of them
  }
  return decoded
    .replace(/[\t\n\r]/g, '')
    .split(/[/\\#?]/)
    .some((segment) => segment.replace(/^[\0- ]+|[\0- ]+$/g, '') === '..');
}

/** A header name is a token (RFC 9110 §5.6.2); a value holds no CR, LF or NUL (§5.5). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const NOT_IN_VALUE = /[\r\n\0]/;

/**
 * Whether a header can cross the relay as it is. uWS writes names and values as given, so a CR/LF in
 * a sidecar's value would start a header (or a response) of its own; the sidecar's HTTP client
 * refuses such a request header outright. Neither is a header any client or back end sends.
 */
function isWellFormed(name: string, value: string): boolean {
  return TOKEN.test(name) && !NOT_IN_VALUE.test(value);
}

export interface ForwardedFor {
  /** The address this node received the request from (the client, or the proxy in front of it): the hop X-Forwarded-For gains. */
  peerIp: string;
  /** The peer is a proxy in TRUSTED_PROXIES: its X-Forwarded-For is kept and extended; otherwise it is the client's own word and replaced. */
  viaTrustedProxy: boolean;
  proto: 'http' | 'https';
  host: string | undefined;
}

/**
 * The request headers relayed to the sidecar: lowercase names (they already are), one value each
 * (repeated lines arrive joined), hop-by-hop ones and those the Connection header names dropped,
 * malformed ones (isWellFormed) dropped, and X-Forwarded-For/-Proto/-Host set by this proxy (an earlier X-Forwarded-For is extended only
 * when a trusted proxy wrote it: a client's own cannot put a forged address before its real one).
 */
export function relayedRequestHeaders(headers: Readonly<Record<string, string>>, forwarded: ForwardedFor): Record<string, string> {
  const named = connectionOptions(headers.connection);
  const out = Object.create(null) as Record<string, string>;
  for (const name of Object.keys(headers)) {
    if (HOP_BY_HOP.has(name) || named.has(name)) continue;
    const value = headers[name];
    if (value !== undefined && isWellFormed(name, value)) out[name] = value;
  }
  const earlier = forwarded.viaTrustedProxy ? out['x-forwarded-for'] : undefined;
  out['x-forwarded-for'] = earlier === undefined || earlier === '' ? forwarded.peerIp : `${earlier}, ${forwarded.peerIp}`;
  out['x-forwarded-proto'] = forwarded.proto;
  if (forwarded.host !== undefined && !NOT_IN_VALUE.test(forwarded.host)) out['x-forwarded-host'] = forwarded.host;
  return out;
}

/**
 * The response headers for the public client: names lowercased (sidecars send canonical case),
 * hop-by-hop and framing headers dropped (the relay frames the body itself), a name repeated in
 * different case joined — but Set-Cookie kept line by line; malformed ones (isWellFormed) dropped.
 */
export function relayedResponseHeaders(headers: readonly (readonly [string, string])[]): [string, string][] {
  const byName = new Map<string, string>();
  const cookies: [string, string][] = [];
  let connection: string | undefined;
  for (const [raw, value] of headers) if (raw.toLowerCase() === 'connection') connection = value;
  const named = connectionOptions(connection);
  for (const [raw, value] of headers) {
    const name = raw.toLowerCase();
    if (HOP_BY_HOP.has(name) || FRAMING.has(name) || named.has(name) || !isWellFormed(name, value)) continue;
    // Set-Cookie values cannot be joined into one line (RFC 6265 §3): each stays a header of its own.
    if (name === 'set-cookie') cookies.push([name, value]);
    else byName.set(name, byName.has(name) ? `${byName.get(name) ?? ''}, ${value}` : value);
  }
  return [...byName, ...cookies];
}
