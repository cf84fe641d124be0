// PURE codec of inter-node envelopes on the bus. An envelope is a one-line
// header, a newline, and the client frame exactly as recipients will receive
// it. The frame is encoded once by the sending node; receiving nodes read only
// the header and hand the frame text to their sockets unchanged.
//
//   dm node-a <sender session> offer node-a.1k\n{"type":"offer","from":"u1",...}
//
// The header is the kind and its fields separated by single spaces. Every field
// is a node id, a session id (or SERVER_SENDER), a frame type or a presence
// status, none of which can hold a space or a newline (NODE_ID and ids are
// [A-Za-z0-9_.:@-], session ids base64url). Split
// by hand rather than JSON: encoding and reading a JSON header cost ~650 ns per
// message between two nodes, this ~60 ns.
//
// dm, room and event carry the message's id `m` (`<origin node>.<counter>`,
// base 36): unique in the cluster, it lets a resumed session drop a message it
// got both live and from its replay buffer (resume/kept-frames.ts).
//
// Kinds (a discriminated union, so a switch narrows the header):
//   dm    direct signal to a user or device channel; `s` (the sender) never receives it
//   room  room traffic (message, member_joined, member_left); `s` is excluded, or
//         SERVER_SENDER (`*`) when the server speaks (a reaped member's
//         member_left) and nobody is
//   event server event from the HTTP API (user, device, room or broadcast channel)
//   pres  presence change of a watched user, with the new status (`st`), so that
//         each node tells each watcher only what differs from what it was told
//   kick  close session `s` with 4009: a newer connection took its (user, device)

/** The sender of server-originated room traffic: `*` cannot be a session id (base64url). */
export const SERVER_SENDER = '*';

export type Envelope =
  | { k: 'dm'; o: string; s: string; t: string; m: string }
  | { k: 'room'; o: string; s: string; t: string; m: string }
  | { k: 'event'; o: string; m: string }
  | { k: 'pres'; o: string; st: 'online' | 'offline' }
  | { k: 'kick'; o: string; s: string };

export type EnvelopeKind = Envelope['k'];

export interface DecodedEnvelope {
  header: Envelope;
  /** The frame to send to recipients (empty for `kick`). */
  frame: string;
}

export function encodeEnvelope(header: Envelope, frame = ''): string {
  switch (header.k) {
    case 'dm':
    case 'room':
      return `${header.k} ${header.o} ${header.s} ${header.t} ${header.m}\n${frame}`;
    case 'kick':
      return `kick ${header.o} ${header.s}\n${frame}`;
    case 'pres':
      return `pres ${header.o} ${header.st}\n${frame}`;
    case 'event':
      return `event ${header.o} ${header.m}\n${frame}`;
  }
}

/** Returns undefined for anything that is not a well-formed envelope (another deployment's traffic, a bug). */
export function decodeEnvelope(message: string): DecodedEnvelope | undefined {
  const newline = message.indexOf('\n');
  if (newline === -1) return undefined;
  const fields = splitHeader(message.slice(0, newline));
  if (fields === undefined) return undefined;
  const [k, o, s, t, m] = fields;
  const frame = message.slice(newline + 1);
  switch (k) {
    case 'dm':
    case 'room':
      return fields.length === 5 && s !== undefined && t !== undefined && m !== undefined ? { header: { k, o, s, t, m }, frame } : undefined;
    case 'kick':
      return fields.length === 3 && s !== undefined ? { header: { k, o, s }, frame } : undefined;
    case 'pres':
      return fields.length === 3 && (s === 'online' || s === 'offline') ? { header: { k, o, st: s }, frame } : undefined;
    case 'event':
      return fields.length === 3 && s !== undefined ? { header: { k, o, m: s }, frame } : undefined;
    default:
      return undefined;
  }
}

/** The header's 2–5 space-separated fields, none empty; undefined otherwise. */
function splitHeader(header: string): [string, string, ...string[]] | undefined {
  const fields: string[] = [];
  let at = 0;
  for (;;) {
    const space = header.indexOf(' ', at);
    const end = space === -1 ? header.length : space;
    if (end === at || fields.length === 5) return undefined; // an empty field, or a sixth one
    fields.push(header.slice(at, end));
    if (space === -1) return fields.length >= 2 ? (fields as [string, string, ...string[]]) : undefined;
    at = end + 1;
  }
}
