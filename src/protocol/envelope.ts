// PURE codec of inter-node envelopes on the bus. An envelope is a small JSON
// header, a newline, and the client frame exactly as recipients will receive
// it. The frame is encoded once by the sending node; receiving nodes parse
// only the header and hand the frame text to their sockets unchanged.
//
//   {"k":"dm","o":"node-a","s":"<sender session>","t":"offer"}\n{"type":"offer","from":"u1",...}
//
// Kinds (a discriminated union, so a switch narrows the header):
//   dm    direct signal to a user or device channel; `s` (the sender) never receives it
//   room  room traffic (message, member_joined, member_left); `s` is excluded
//   event server event from the HTTP API (user, device, room or broadcast channel)
//   pres  presence change of a watched user
//   kick  close session `s` with 4009: a newer connection took its (user, device)

export type Envelope =
  | { k: 'dm'; o: string; s: string; t: string }
  | { k: 'room'; o: string; s: string; t: string }
  | { k: 'event'; o: string }
  | { k: 'pres'; o: string }
  | { k: 'kick'; o: string; s: string };

export type EnvelopeKind = Envelope['k'];

export interface DecodedEnvelope {
  header: Envelope;
  /** The frame to send to recipients (empty for `kick`). */
  frame: string;
}

export function encodeEnvelope(header: Envelope, frame = ''): string {
  return `${JSON.stringify(header)}\n${frame}`;
}

const KINDS: ReadonlySet<string> = new Set(['dm', 'room', 'event', 'pres', 'kick']);

/** Returns undefined for anything that is not a well-formed envelope (another deployment's traffic, a bug). */
export function decodeEnvelope(message: string): DecodedEnvelope | undefined {
  const newline = message.indexOf('\n');
  if (newline === -1) return undefined;
  let header: unknown;
  try {
    header = JSON.parse(message.slice(0, newline));
  } catch {
    return undefined;
  }
  if (typeof header !== 'object' || header === null) return undefined;
  const h = header as Record<string, unknown>;
  if (typeof h.k !== 'string' || !KINDS.has(h.k) || typeof h.o !== 'string') return undefined;
  if ((h.k === 'dm' || h.k === 'room' || h.k === 'kick') && typeof h.s !== 'string') return undefined;
  if ((h.k === 'dm' || h.k === 'room') && typeof h.t !== 'string') return undefined;
  return { header: header as Envelope, frame: message.slice(newline + 1) };
}
