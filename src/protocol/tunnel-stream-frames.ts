// PURE codec of the `stream` extension's per-request events (docs/tunnel-
// extensions.md), both directions, for the server's relay and for
// `switchboard tunnel` alike. No I/O, no timers; decoders never throw.
//
//   S→C proxy_req{streamed} → proxy_req_chunk* → proxy_req_end      C→S proxy_credit
//   C→S proxy_res_start → proxy_res_chunk* → proxy_res_end | proxy_res_error
//   S→C proxy_credit, proxy_cancel
//
// Chunks carry standard padded base64 in JSON frames, or their raw bytes in a
// binary WebSocket message of their own with `binary_frames` (encodeBinaryChunk
// below). A decoder checks shapes only: that a chunk fits the peer's credit or
// its seq follows the last is the receiver's accounting (sidecar/credit.ts),
// which knows what came before.
import { decodeBase64, type Payload } from './tunnel-frames';

/** Data in one chunk, before base64. */
export const CHUNK_MAX_BYTES = 64 * 1024;
/** Credit each direction of each request starts with: data the peer may send before any `proxy_credit`. */
export const INITIAL_CREDIT_BYTES = 512 * 1024;

export type StreamEvent =
  | { event: 'proxy_req_chunk' | 'proxy_res_chunk'; requestId: string; seq: number; data: Buffer }
  | { event: 'proxy_req_end' | 'proxy_res_end' | 'proxy_cancel'; requestId: string }
  | { event: 'proxy_res_start'; requestId: string; status: number; headers: [name: string, value: string][] }
  | { event: 'proxy_res_error'; requestId: string; reason: string }
  | { event: 'proxy_credit'; requestId: string; bytes: number };

export type StreamEventName = StreamEvent['event'];

export const STREAM_EVENTS: ReadonlySet<string> = new Set<StreamEventName>([
  'proxy_req_chunk',
  'proxy_req_end',
  'proxy_res_start',
  'proxy_res_chunk',
  'proxy_res_end',
  'proxy_res_error',
  'proxy_credit',
  'proxy_cancel',
]);

export type ChunkEvent = Extract<StreamEvent, { event: 'proxy_req_chunk' | 'proxy_res_chunk' }>;

/**
 * `binary_frames`: a chunk as one binary WebSocket message, so bulk data crosses the tunnel socket
 * as it is instead of base64 inside JSON (a third more bytes, encoded, parsed and decoded again;
 * the most of a streamed download's CPU, bench W6):
 *
 *   byte 0        kind: 1 proxy_req_chunk (server → sidecar), 2 proxy_res_chunk (sidecar → server)
 *   bytes 1–4     seq, unsigned 32-bit big-endian
 *   byte 5        n, the request_id's length in bytes (1–255)
 *   bytes 6…6+n   request_id, UTF-8
 *   the rest      the data (at most CHUNK_MAX_BYTES)
 */
const BINARY_KINDS = ['proxy_req_chunk', 'proxy_res_chunk'] as const;
const BINARY_HEAD_BYTES = 6;

export function encodeBinaryChunk(e: ChunkEvent): Buffer {
  const id = Buffer.from(e.requestId);
  if (id.length === 0 || id.length > 255) throw new RangeError('request_id must be 1–255 bytes');
  const frame = Buffer.allocUnsafe(BINARY_HEAD_BYTES + id.length + e.data.length);
  frame[0] = BINARY_KINDS.indexOf(e.event) + 1;
  frame.writeUInt32BE(e.seq, 1);
  frame[5] = id.length;
  id.copy(frame, BINARY_HEAD_BYTES);
  frame.set(e.data, BINARY_HEAD_BYTES + id.length);
  return frame;
}

/**
 * The chunk in a binary message, or undefined when it is not one. `data` is a view into `bytes`:
 * a caller whose bytes are only lent for the call (uWS's message ArrayBuffer) copies them first.
 */
export function decodeBinaryChunk(bytes: Uint8Array): ChunkEvent | undefined {
  if (bytes.length < BINARY_HEAD_BYTES + 1) return undefined;
  const event = BINARY_KINDS[bytes[0]! - 1];
  const idEnd = BINARY_HEAD_BYTES + bytes[5]!;
  if (event === undefined || bytes[5] === 0 || idEnd > bytes.length || bytes.length - idEnd > CHUNK_MAX_BYTES) return undefined;
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  return { event, seq: buffer.readUInt32BE(1), requestId: buffer.toString('utf8', BINARY_HEAD_BYTES, idEnd), data: buffer.subarray(idEnd) };
}

/** The event, or undefined when `event` is not a stream event or the payload is malformed. */
export function decodeStreamEvent(event: string, payload: Payload): StreamEvent | undefined {
  const requestId = payload.request_id;
  if (typeof requestId !== 'string' || requestId === '') return undefined;
  switch (event) {
    case 'proxy_req_chunk':
    case 'proxy_res_chunk': {
      const data = decodeBase64(payload.data);
      const seq = payload.seq;
      if (data === undefined || !Number.isSafeInteger(seq) || (seq as number) < 0) return undefined;
      return { event, requestId, seq: seq as number, data };
    }
    case 'proxy_req_end':
    case 'proxy_res_end':
    case 'proxy_cancel':
      return { event, requestId };
    case 'proxy_res_start': {
      const status = payload.status;
      if (!Number.isInteger(status) || (status as number) < 100 || (status as number) > 999) return undefined;
      return { event, requestId, status: status as number, headers: headerEntries(payload.headers) };
    }
    case 'proxy_res_error':
      return { event, requestId, reason: typeof payload.reason === 'string' ? payload.reason : 'error' };
    case 'proxy_credit': {
      const bytes = payload.bytes;
      if (!Number.isSafeInteger(bytes) || (bytes as number) <= 0) return undefined;
      return { event, requestId, bytes: bytes as number };
    }
    default:
      return undefined;
  }
}

/** The payload of `e`: request_id first, then the members in the order the extension's doc lists them. */
export function streamEventPayload(e: StreamEvent): object {
  switch (e.event) {
    case 'proxy_req_chunk':
    case 'proxy_res_chunk':
      return { request_id: e.requestId, seq: e.seq, data: e.data.toString('base64') };
    case 'proxy_req_end':
    case 'proxy_res_end':
    case 'proxy_cancel':
      return { request_id: e.requestId };
    case 'proxy_res_start':
      return { request_id: e.requestId, status: e.status, headers: headerObject(e.headers) };
    case 'proxy_res_error':
      return { request_id: e.requestId, reason: e.reason };
    case 'proxy_credit':
      return { request_id: e.requestId, bytes: e.bytes };
  }
}

/**
 * A headers object as the protocol carries it (one string per name) from entries. Names repeated
 * with the same spelling are joined with ", "; callers that must keep lines apart (Set-Cookie)
 * spell each one differently (sidecar/headers.ts), as the server keeps those apart.
 */
export function headerObject(entries: readonly (readonly [string, string])[]): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  for (const [name, value] of entries) out[name] = name in out ? `${out[name]}, ${value}` : value;
  return out;
}

/** The string-valued members of a headers object, in order; anything else yields none. */
export function headerEntries(headers: unknown): [string, string][] {
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) return [];
  const out: [string, string][] = [];
  for (const [name, value] of Object.entries(headers)) if (typeof value === 'string') out.push([name, value]);
  return out;
}
