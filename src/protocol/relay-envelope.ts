// PURE codec of the messages that carry a relayed request between the public
// client's node and the sidecar's node over the bus (tunnel/node-relay.ts).
// One JSON array per message, kind first; bodies are base64. Decoding never
// throws: a message that does not fit is undefined (counted and dropped).
//
//   to the sidecar's node:  open · body · body_end · credit · cancel
//                           ws_check · ws_open · ws_send · ws_close
//   to the client's node:   body_credit · start · data · end · fail
//                           ws_checked · ws_connected · ws_recv · ws_closed · ws_fail
import { parseJsonArray } from './json-member';
import { RELAYED_METHODS, type RelayedMethod, type WsOpcode } from './tunnel-frames';

export interface RelayedWsHead {
  id: string;
  path: string;
  queryString: string;
  headers: Record<string, string>;
}

const OPCODES: readonly unknown[] = ['text', 'binary', 'ping', 'pong'];

export interface RelayedHead {
  id: string;
  method: RelayedMethod;
  path: string;
  queryString: string;
  headers: Record<string, string>;
  bodyLength: number | undefined;
}

export type RelayEnvelope =
  | { kind: 'open'; id: string; from: string; sidecar: string; head: RelayedHead }
  | { kind: 'body'; id: string; data: Buffer }
  | { kind: 'body_end'; id: string }
  | { kind: 'credit'; id: string; bytes: number }
  | { kind: 'cancel'; id: string }
  | { kind: 'body_credit'; id: string; bytes: number }
  | { kind: 'start'; id: string; status: number; headers: [string, string][]; contentLength: number | undefined }
  | { kind: 'data'; id: string; data: Buffer }
  | { kind: 'end'; id: string }
  | { kind: 'fail'; id: string; failure: string }
  | { kind: 'ws_check' | 'ws_open'; id: string; from: string; sidecar: string; head: RelayedWsHead }
  | { kind: 'ws_send' | 'ws_recv'; id: string; opcode: WsOpcode; data: Buffer }
  | { kind: 'ws_close' | 'ws_closed'; id: string; code: number; reason: string }
  | { kind: 'ws_checked'; id: string; supported: boolean; protocol: string | undefined; reason: string | undefined }
  | { kind: 'ws_connected'; id: string; protocol: string | undefined }
  | { kind: 'ws_fail'; id: string; failure: string };

export function encodeRelayEnvelope(envelope: RelayEnvelope): string {
  switch (envelope.kind) {
    case 'open': {
      const { head } = envelope;
      return JSON.stringify(['open', envelope.id, envelope.from, envelope.sidecar, head.method, head.path, head.queryString, head.headers, head.bodyLength ?? null]);
    }
    case 'body':
    case 'data':
      return JSON.stringify([envelope.kind, envelope.id, envelope.data.toString('base64')]);
    case 'credit':
    case 'body_credit':
      return JSON.stringify([envelope.kind, envelope.id, envelope.bytes]);
    case 'start':
      return JSON.stringify(['start', envelope.id, envelope.status, envelope.headers, envelope.contentLength ?? null]);
    case 'fail':
    case 'ws_fail':
      return JSON.stringify([envelope.kind, envelope.id, envelope.failure]);
    case 'ws_check':
    case 'ws_open': {
      const { head } = envelope;
      return JSON.stringify([envelope.kind, envelope.id, envelope.from, envelope.sidecar, head.path, head.queryString, head.headers]);
    }
    case 'ws_send':
    case 'ws_recv':
      return JSON.stringify([envelope.kind, envelope.id, envelope.opcode, envelope.data.toString('base64')]);
    case 'ws_close':
    case 'ws_closed':
      return JSON.stringify([envelope.kind, envelope.id, envelope.code, envelope.reason]);
    case 'ws_checked':
      return JSON.stringify(['ws_checked', envelope.id, envelope.supported, envelope.protocol ?? null, envelope.reason ?? null]);
    case 'ws_connected':
      return JSON.stringify(['ws_connected', envelope.id, envelope.protocol ?? null]);
    default:
      return JSON.stringify([envelope.kind, envelope.id]);
  }
}

export function decodeRelayEnvelope(text: string): RelayEnvelope | undefined {
  const value = parseJsonArray(text);
  if (value === undefined || typeof value[0] !== 'string' || typeof value[1] !== 'string') return undefined;
  const [kind, id] = value as [string, string];
  const field = (index: number): unknown => value[index];
  switch (kind) {
    case 'open': {
      const [from, sidecar, method, path, queryString, headers, bodyLength] = value.slice(2);
      if (typeof from !== 'string' || typeof sidecar !== 'string' || typeof path !== 'string' || typeof queryString !== 'string') return undefined;
      if (!(RELAYED_METHODS as readonly unknown[]).includes(method) || !isStringRecord(headers)) return undefined;
      if (bodyLength !== null && !(Number.isSafeInteger(bodyLength) && (bodyLength as number) >= 0)) return undefined;
      return {
        kind,
        id,
        from,
        sidecar,
        head: { id, method: method as RelayedMethod, path, queryString, headers, bodyLength: bodyLength === null ? undefined : (bodyLength as number) },
      };
    }
    case 'body':
    case 'data':
      return typeof field(2) === 'string' ? { kind, id, data: Buffer.from(field(2) as string, 'base64') } : undefined;
    case 'credit':
    case 'body_credit':
      return Number.isSafeInteger(field(2)) && (field(2) as number) > 0 ? { kind, id, bytes: field(2) as number } : undefined;
    case 'start': {
      const [status, headers, contentLength] = value.slice(2);
      if (!Number.isInteger(status) || !Array.isArray(headers) || !headers.every(isStringPair)) return undefined;
      if (contentLength !== null && !(Number.isSafeInteger(contentLength) && (contentLength as number) >= 0)) return undefined;
      return { kind, id, status: status as number, headers: headers, contentLength: contentLength === null ? undefined : (contentLength as number) };
    }
    case 'fail':
    case 'ws_fail':
      return typeof field(2) === 'string' ? { kind, id, failure: field(2) as string } : undefined;
    case 'ws_check':
    case 'ws_open': {
      const [from, sidecar, path, queryString, headers] = value.slice(2);
      if (typeof from !== 'string' || typeof sidecar !== 'string' || typeof path !== 'string' || typeof queryString !== 'string' || !isStringRecord(headers))
        return undefined;
      return { kind, id, from, sidecar, head: { id, path, queryString, headers } };
    }
    case 'ws_send':
    case 'ws_recv':
      return OPCODES.includes(field(2)) && typeof field(3) === 'string' ? { kind, id, opcode: field(2) as WsOpcode, data: Buffer.from(field(3) as string, 'base64') } : undefined;
    case 'ws_close':
    case 'ws_closed':
      return Number.isInteger(field(2)) && typeof field(3) === 'string' ? { kind, id, code: field(2) as number, reason: field(3) as string } : undefined;
    case 'ws_checked': {
      const [supported, protocol, reason] = value.slice(2);
      if (typeof supported !== 'boolean' || !isOptionalString(protocol) || !isOptionalString(reason)) return undefined;
      return { kind, id, supported, protocol: protocol ?? undefined, reason: reason ?? undefined };
    }
    case 'ws_connected':
      return isOptionalString(field(2)) ? { kind, id, protocol: (field(2) as string | null) ?? undefined } : undefined;
    case 'body_end':
    case 'cancel':
    case 'end':
      return { kind, id };
    default:
      return undefined;
  }
}

function isStringRecord(value: unknown): value is Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  return Object.values(value).every((member) => typeof member === 'string');
}

function isOptionalString(value: unknown): value is string | null {
  return value === null || typeof value === 'string';
}

function isStringPair(value: unknown): value is [string, string] {
  return Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && typeof value[1] === 'string';
}
