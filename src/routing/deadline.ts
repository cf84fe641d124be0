// How long a client's request waits for the cluster before it is answered
// anyway. The Redis subscriber keeps its queue during an outage (so that
// subscribes apply when Redis returns), so a subscribe sent just before Redis
// went away would otherwise hold its client's `subscribed` — or its welcome —
// for the whole outage. 2 s is the commands client's timeout too
// (bus/redis-clients.ts): past it, a request is answered `unavailable`.
import type { MaybePromise } from '../util/maybe-promise';

export const CLUSTER_WAIT_MS = 2000;

export class ClusterTimeoutError extends Error {
  constructor(what: string) {
    super(`${what} did not complete within ${CLUSTER_WAIT_MS} ms`);
    this.name = 'ClusterTimeoutError';
  }
}

/** `value`, or a rejection with ClusterTimeoutError when it takes longer than CLUSTER_WAIT_MS. At once when it is known now. */
export function withinClusterWait<T>(value: MaybePromise<T>, what: string): MaybePromise<T> {
  if (!(value instanceof Promise)) return value;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new ClusterTimeoutError(what)), CLUSTER_WAIT_MS)));
  return Promise.race([value, timeout]).finally(() => clearTimeout(timer));
}
