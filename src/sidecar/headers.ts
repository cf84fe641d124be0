// The headers the sidecar passes between the tunnel and the back end, pure.
// Hop-by-hop headers describe one connection, not the message (RFC 9110
// §7.6.1): they are dropped both ways, with any header the Connection header
// names, as fastify-reply-from and nginx do. The server drops them too; the
// sidecar does not rely on that (it may face an older server, or a back end
// that sends them).
import { connectionOptions, HOP_BY_HOP } from '../http/hop-by-hop';

/**
 * Request headers the sidecar sets itself: `host` is the back end's (the public host stays in
 * X-Forwarded-Host), `expect` would make the back end wait for a 100 the tunnel cannot relay.
 */
const SET_BY_SIDECAR: ReadonlySet<string> = new Set(['host', 'expect']);

/** The WebSocket handshake's own headers: the `ws` client writes them for the back-end connection. */
const WS_HANDSHAKE: ReadonlySet<string> = new Set([
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-extensions',
  'sec-websocket-accept',
  'sec-websocket-protocol',
]);

function valueOf(entries: readonly (readonly [string, string])[], name: string): string | undefined {
  for (const [n, v] of entries) if (n.toLowerCase() === name) return v;
  return undefined;
}

/**
 * The request headers for the back end (lowercase names). A complete body's Content-Length is
 * dropped (undici computes it from the bytes it sends); a streamed body keeps the one the public
 * client declared, so the back end sees a fixed-length upload rather than a chunked one.
 */
export function backendRequestHeaders(entries: readonly (readonly [string, string])[], opts: { streamed: boolean }): Record<string, string> {
  const named = connectionOptions(valueOf(entries, 'connection'));
  const out = Object.create(null) as Record<string, string>;
  for (const [raw, value] of entries) {
    const name = raw.toLowerCase();
    if (HOP_BY_HOP.has(name) || SET_BY_SIDECAR.has(name) || named.has(name)) continue;
    if (name === 'content-length' && !opts.streamed) continue;
    out[name] = name in out ? `${out[name]}, ${value}` : value;
  }
  return out;
}

/** The headers for a back-end WebSocket: the forwarded ones (TUNNEL-PROTOCOL.md §7) minus the handshake's own. */
export function backendWsHeaders(entries: readonly (readonly [string, string])[]): Record<string, string> {
  const out = backendRequestHeaders(entries, { streamed: false });
  for (const name of WS_HANDSHAKE) delete out[name];
  return out;
}

/** The subprotocols the public client offered, in its order. */
export function offeredProtocols(entries: readonly (readonly [string, string])[]): string[] {
  const value = valueOf(entries, 'sec-websocket-protocol') ?? '';
  return value
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
}

/**
 * Canonical names already made: a back end sends the same few names on every response, and the
 * regular expression below was a few per cent of the sidecar's CPU per small request (bench W6).
 * Bounded, since the names come from the back end: past the bound, names are made each time.
 */
const canonicalNames = new Map<string, string>();
const CANONICAL_NAMES_MAX = 1000;

/** `content-type` → `Content-Type`, as Telephone (Go's net/http) writes names. */
export function canonicalHeaderName(name: string): string {
  let canonical = canonicalNames.get(name);
  if (canonical === undefined) {
    canonical = name.toLowerCase().replace(/(^|-)([a-z])/g, (_m, dash: string, letter: string) => dash + letter.toUpperCase());
    if (canonicalNames.size < CANONICAL_NAMES_MAX) canonicalNames.set(name, canonical);
  }
  return canonical;
}

const NO_NAMES: ReadonlySet<string> = new Set();
/** The last Connection value read and the names it lists: a back end sends the same one (`keep-alive`) every time. */
let lastConnection: { value: string; named: ReadonlySet<string> } | undefined;

function namedByConnection(value: string | string[] | undefined): ReadonlySet<string> {
  if (value === undefined) return NO_NAMES;
  const text = Array.isArray(value) ? value.join(',') : value;
  if (lastConnection?.value !== text) lastConnection = { value: text, named: connectionOptions(text) };
  return lastConnection.named;
}

/**
 * The back end's response headers for `proxy_res` / `proxy_res_start`: canonical-case names, one
 * string each (repeated ones joined with ", "), hop-by-hop ones dropped. The protocol's headers
 * object has one value per name, so each Set-Cookie line after the first is written with a
 * differently cased name: the server lowercases names but keeps Set-Cookie lines apart
 * (tunnel/public-request.ts), so every cookie reaches the public client as its own line.
 */
export function relayedResponseHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): Record<string, string> {
  const named = namedByConnection(headers.connection);
  const out = Object.create(null) as Record<string, string>;
  for (const raw of Object.keys(headers)) {
    const value = headers[raw];
    if (value === undefined) continue;
    const name = raw.toLowerCase();
    if (HOP_BY_HOP.has(name) || named.has(name)) continue;
    if (name === 'set-cookie') {
      const lines = Array.isArray(value) ? value : [value];
      lines.forEach((line, i) => {
        const key = spelling(name, i);
        out[key] = key in out ? `${out[key]}, ${line}` : line;
      });
    } else {
      out[canonicalHeaderName(name)] = Array.isArray(value) ? value.join(', ') : value;
    }
  }
  return out;
}

/**
 * The `i`th spelling of a lowercase header name: the canonical one first, then every other mix of
 * cases (bit j of the mask capitalises letter j). A name with n letters has 2^n spellings; past
 * them (512 cookies for Set-Cookie) the last spelling is reused and those lines are joined.
 */
export function spelling(name: string, i: number): string {
  const canonical = canonicalHeaderName(name);
  if (i === 0) return canonical;
  const masks = 2 ** (name.match(/[a-z]/g) ?? []).length;
  let seen = 0;
  for (let mask = 0; mask < masks; mask++) {
    const candidate = applyMask(name, mask);
    if (candidate !== canonical && ++seen === i) return candidate;
  }
  return applyMask(name, masks - 1);
}

function applyMask(name: string, mask: number): string {
  let j = 0;
  let out = '';
  for (const c of name) {
    if (/[a-z]/.test(c)) out += mask & (1 << j++) ? c.toUpperCase() : c;
    else out += c;
  }
  return out;
}
