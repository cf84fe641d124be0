// The client IP for per-IP limits (SPEC §3.7): the socket peer, or the
// X-Forwarded-For entry added by a proxy listed in TRUSTED_PROXIES. proxy-addr
// (Express's implementation) walks the header from the right and stops at
// the first untrusted hop, so a client cannot forge its address.
import proxyaddr from 'proxy-addr';
import type { RequestInfo } from '../transport/http-types';

export type ClientIpResolver = (request: RequestInfo) => string;

export function clientIpResolver(trustedProxies: readonly string[]): ClientIpResolver {
  if (trustedProxies.length === 0) return (request) => normalise(request.peerAddress);
  const trust = proxyaddr.compile([...trustedProxies]);
  return (request) => {
    const fake = {
      headers: { 'x-forwarded-for': request.headers['x-forwarded-for'] },
      connection: { remoteAddress: normalise(request.peerAddress) },
      socket: { remoteAddress: normalise(request.peerAddress) },
    };
    return proxyaddr(fake as unknown as Parameters<typeof proxyaddr>[0], trust);
  };
}

export interface ForwardingPeer {
  peerIp: string;
  viaTrustedProxy: boolean;
  /** The client's scheme: a trusted proxy's X-Forwarded-Proto, else this listener's own (https with TLS_CERT_FILE). */
  proto: 'http' | 'https';
}

/**
 * What X-Forwarded-For/-Proto need of a request (tunnel relay): the peer's address, whether the
 * peer is a trusted proxy (then the header it sent is kept and extended, not replaced), and the
 * scheme the client used.
 */
export function forwardingPeer(trustedProxies: readonly string[], listenerTls: boolean): (request: RequestInfo) => ForwardingPeer {
  const trust = trustedProxies.length === 0 ? () => false : proxyaddr.compile([...trustedProxies]);
  const own = listenerTls ? 'https' : 'http';
  return (request) => {
    const peerIp = normalise(request.peerAddress);
    const viaTrustedProxy = trust(peerIp, 0);
    if (!viaTrustedProxy) return { peerIp, viaTrustedProxy, proto: own };
    return { peerIp, viaTrustedProxy, proto: request.headers['x-forwarded-proto'] === 'https' ? 'https' : 'http' };
  };
}

/** uWS gives IPv4 peers as IPv4-mapped IPv6 text ("0000:...:ffff:7f00:0001" or "::ffff:127.0.0.1"). */
function normalise(address: string): string {
  const mapped = /^(?:0{1,4}:){5}ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(address);
  if (mapped !== null) {
    const high = parseInt(mapped[1] ?? '0', 16);
    const low = parseInt(mapped[2] ?? '0', 16);
    return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  }
  if (address.toLowerCase().startsWith('::ffff:') && address.includes('.')) return address.slice(7);
  return address;
}

