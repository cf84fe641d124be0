// Requests waiting for the server's answer, by id. A request is settled once:
// by the first frame carrying its id (an `error` frame rejects, anything else
// resolves), by its timeout, or by the socket closing (`failAll`). Answers
// that come after that are ignored.
import type { ErrorCode } from '../errors/codes';
import { SwitchboardError } from './errors';
import type { ServerFrame } from './frames';
import { clearTimer, setTimer, type TimerHandle } from './platform';

interface Pending {
  resolve(frame: ServerFrame): void;
  reject(error: SwitchboardError): void;
  timer: TimerHandle;
}

export class PendingRequests {
  private readonly pending = new Map<string, Pending>();
  private seq = 0;
  private readonly prefix = Math.random().toString(36).slice(2, 8);

  /** A fresh id; `m` + a per-client random prefix, so ids from two clients of one user do not look alike in logs. */
  nextId(): string {
    return `m${this.prefix}-${++this.seq}`;
  }

  /** Waits for the answer to the request `id` (already sent, or about to be). */
  wait(id: string, timeoutMs: number): Promise<ServerFrame> {
    return new Promise((resolve, reject) => {
      const timer = setTimer(() => {
        this.pending.delete(id);
        reject(new SwitchboardError('timeout', `no answer within ${timeoutMs} ms`, id));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
    });
  }

  /** Settles the request `frame` answers; false when it answers none. */
  settle(frame: ServerFrame): boolean {
    if (frame.id === undefined) return false;
    const request = this.pending.get(frame.id);
    if (request === undefined) return false;
    this.pending.delete(frame.id);
    clearTimer(request.timer);
    // A code newer than this SDK passes through as it came.
    if (frame.type === 'error') request.reject(new SwitchboardError(frame.code as ErrorCode, frame.message, frame.id, frame.retry_after_ms));
    else request.resolve(frame);
    return true;
  }

  /** Rejects every waiting request (the socket closed: no answer can come on it any more). */
  failAll(code: 'closed', message: string): void {
    const all = [...this.pending];
    this.pending.clear();
    for (const [id, request] of all) {
      clearTimer(request.timer);
      request.reject(new SwitchboardError(code, message, id));
    }
  }

  get size(): number {
    return this.pending.size;
  }
}
