// Walking many leased entries in batches, for the stores that hang entries on
// the node's lease (presence, the tunnel registry): a lease's index read a
// batch per round trip, and deferred writes sent a batch at a time.
//
// Every write of a batch settles before a failure is raised: one entry that
// fails (a key of the wrong type) holds up none of the others, and no change
// that was made goes unreported.
import type { RedisClient } from '../bus/redis-clients';

/** Entries per SSCAN round trip, and writes in flight at once. */
const BATCH = 200;

export function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}

/** Visits every member of a set, a batch per round trip (SSCAN: a large index never blocks Redis). */
export async function scanSet(redis: RedisClient, key: string, visit: (member: string) => Promise<void>): Promise<void> {
  let cursor = '0';
  do {
    const [next, members] = await redis.sscan(key, cursor, 'COUNT', BATCH);
    await settleAll(members.map(visit));
    cursor = next;
  } while (cursor !== '0');
}

/**
 * Runs `write` for each item, a batch at a time; the first failure is raised once every batch has
 * settled. Items are read from a snapshot: the collection may change while they are written.
 */
export async function writeInBatches<T>(items: Iterable<T>, write: (item: T) => Promise<void>): Promise<void> {
  const all = [...items];
  let failure: Error | undefined;
  for (let i = 0; i < all.length; i += BATCH) {
    try {
      await settleAll(all.slice(i, i + BATCH).map(write));
    } catch (error) {
      failure ??= asError(error);
    }
  }
  if (failure !== undefined) throw failure;
}

async function settleAll(writes: Promise<void>[]): Promise<void> {
  const failed = (await Promise.allSettled(writes)).find((result) => result.status === 'rejected');
  if (failed !== undefined) throw asError(failed.reason);
}
