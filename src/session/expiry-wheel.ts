// Token expiry for every session of a node on one timer. A setTimeout per
// session costs ~250 B (bench W4: memory per idle connection) and a timer
// list insertion per connect; sessions instead go into one-second buckets,
// and one interval, running only while a bucket is held, expires the buckets
// whose second has come. A session is closed within a second after its `exp`.

export interface Expiring {
  expire(): void;
}

const BUCKET_MS = 1000;

export class ExpiryWheel<T extends Expiring> {
  /** Bucket second (epoch seconds, rounded up) → sessions expiring in it. */
  private readonly buckets = new Map<number, Set<T>>();
  private timer: NodeJS.Timeout | undefined;

  /** Schedules `item.expire()` at `atMs` (epoch ms) or within a second after; returns the bucket to `remove` it from. */
  add(item: T, atMs: number): number {
    const bucket = Math.ceil(atMs / BUCKET_MS);
    let items = this.buckets.get(bucket);
    if (items === undefined) this.buckets.set(bucket, (items = new Set()));
    items.add(item);
    this.timer ??= setInterval(() => this.tick(), BUCKET_MS).unref();
    return bucket;
  }

  remove(item: T, bucket: number): void {
    const items = this.buckets.get(bucket);
    if (items === undefined) return;
    items.delete(item);
    if (items.size === 0) this.buckets.delete(bucket);
    this.stopWhenEmpty();
  }

  get size(): number {
    let n = 0;
    for (const items of this.buckets.values()) n += items.size;
    return n;
  }

  private tick(): void {
    const now = Date.now();
    for (const [bucket, items] of this.buckets) {
      if (bucket * BUCKET_MS > now) continue;
      this.buckets.delete(bucket);
      for (const item of items) item.expire();
    }
    this.stopWhenEmpty();
  }

  private stopWhenEmpty(): void {
    if (this.buckets.size > 0 || this.timer === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
