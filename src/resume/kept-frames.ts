// How a frame is kept in a replay buffer: its message id (envelope.ts), a
// space, and the frame exactly as the client would have received it. The id
// lets the resumed session send each message once although it may arrive
// twice — live on the new connection and from the buffer, or in the buffer
// twice (kept by the sender's node and by the session's old node as it went
// away). Frames kept without an id (what a slow consumer's socket never
// wrote) are always sent.
import type { BufferedMessage } from './resume-store';

export function keptFrame(id: string | undefined, frame: string): string {
  return `${id ?? ''} ${frame}`;
}

/**
 * The frames to replay, in buffer order, each id once, none of those in `seen` (what the new
 * connection already got live); `seen` gets the replayed ids.
 */
export function framesToReplay(messages: readonly BufferedMessage[], seen: Set<string>): string[] {
  return keptOnce(messages, seen).map(([, frame]) => frame);
}

/** As `framesToReplay`, with each frame's message id (undefined when kept without one). */
export function keptOnce(messages: readonly BufferedMessage[], seen: Set<string>): [id: string | undefined, frame: string][] {
  const out: [string | undefined, string][] = [];
  for (const { data } of messages) {
    const space = data.indexOf(' ');
    const id = space > 0 ? data.slice(0, space) : undefined;
    if (id !== undefined) {
      if (seen.has(id)) continue;
      seen.add(id);
    }
    out.push([id, data.slice(space + 1)]);
  }
  return out;
}
