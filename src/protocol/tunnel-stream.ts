// PURE decoders of the `stream` extension's frames from the sidecar
// (docs/tunnel-extensions.md): proxy_res_start, proxy_res_chunk, proxy_res_end,
// proxy_res_error and proxy_credit. Like tunnel-frames.ts: no I/O, and a
// payload that does not fit is undefined (ignored), never a throw.
import type { Payload } from './tunnel-frames';

/** Standard padded base64 (what Buffer.from(…, 'base64') would otherwise accept loosely). */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function isBase64(text: string): boolean {
  return BASE64.test(text);
}

export type StreamEvent =
  | { event: 'proxy_res_start'; requestId: string; status: number; headers: [string, string][] }
  | { event: 'proxy_res_chunk'; requestId: string; seq: number; data: Buffer }
  | { event: 'proxy_res_end'; requestId: string }
  | { event: 'proxy_res_error'; requestId: string; reason: string }
  | { event: 'proxy_credit'; requestId: string; bytes: number };

export const STREAM_EVENTS: ReadonlySet<string> = new Set(['proxy_res_start', 'proxy_res_chunk', 'proxy_res_end', 'proxy_res_error', 'proxy_credit']);

export function decodeStreamEvent(event: string, payload: Payload): StreamEvent | undefined {
  const requestId = payload.request_id;
  if (typeof requestId !== 'string' || requestId === '') return undefined;
  switch (event) {
    case 'proxy_res_start': {
      const status = payload.status === undefined ? 200 : payload.status;
      if (!Number.isInteger(status) || (status as number) < 100 || (status as number) > 999) return undefined;
      return { event, requestId, status: status as number, headers: headerPairs(payload.headers) };
    }
    case 'proxy_res_chunk': {
      const { seq, data } = payload;
      if (!Number.isSafeInteger(seq) || (seq as number) < 0 || typeof data !== 'string' || !isBase64(data)) return undefined;
      return { event, requestId, seq: seq as number, data: Buffer.from(data, 'base64') };
    }
    case 'proxy_res_end':
      return { event, requestId };
    case 'proxy_res_error':
      return { event, requestId, reason: typeof payload.reason === 'string' ? payload.reason.slice(0, 200) : 'error' };
    case 'proxy_credit': {
      const bytes = payload.bytes;
      return Number.isSafeInteger(bytes) && (bytes as number) > 0 ? { event, requestId, bytes: bytes as number } : undefined;
    }
    default:
      return undefined;
  }
}

/** A headers object's string members as pairs (names as sent; the relay lowercases and filters them). */
export function headerPairs(value: unknown): [string, string][] {
  const pairs: [string, string][] = [];
  if (typeof value === 'object' && value !== null && !Array.isArray(value))
    for (const [name, text] of Object.entries(value)) if (typeof text === 'string') pairs.push([name, text]);
  return pairs;
}
