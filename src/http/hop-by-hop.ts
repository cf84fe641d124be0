// Headers that describe one connection, not the message (RFC 9110 §7.6.1):
// a proxy drops them, and those the Connection header names, as
// fastify-reply-from and nginx do. Pure. Used by both ends of a tunnel: the
// server's relay (tunnel/public-request.ts) and the sidecar's (sidecar/headers.ts).

/** The hop-by-hop headers, plus the proxy's own. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** The header names a Connection header lists (they are hop-by-hop too), lowercased. */
export function connectionOptions(value: string | undefined): ReadonlySet<string> {
  if (value === undefined) return new Set();
  return new Set(
    value
      .split(',')
      .map((option) => option.trim().toLowerCase())
      .filter((option) => option !== ''),
  );
}
