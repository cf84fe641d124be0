// A value that is usually known at once and sometimes only later. The per-message
// hot path (rate limit → route → deliver → ack) is synchronous on one node and for
// most frames in a cluster; returning plain values there instead of promises saves
// an allocation and a microtask turn per step (measured with bench W1: the three
// promises per relayed frame were ~10 % of the server's CPU time).

export type MaybePromise<T> = T | Promise<T>;

/** Calls `onValue` now when the value is known, else once it resolves; `onError` when it rejects or `onValue` throws. */
export function whenReady<T>(value: MaybePromise<T>, onValue: (value: T) => void, onError: (error: unknown) => void): void {
  const run = (known: T): void => {
    try {
      onValue(known);
    } catch (error) {
      onError(error);
    }
  };
  if (value instanceof Promise) value.then(run, onError);
  else run(value);
}

/** Applies `map` now when the value is known, else once it resolves. */
export function mapMaybe<T, R>(value: MaybePromise<T>, map: (value: T) => R): MaybePromise<R> {
  return value instanceof Promise ? value.then(map) : map(value);
}

/** Runs `next` now when the value is known, else once it resolves (`next` may itself return a promise). */
export function chainMaybe<T, R>(value: MaybePromise<T>, next: (value: T) => MaybePromise<R>): MaybePromise<R> {
  return value instanceof Promise ? value.then(next) : next(value);
}

/** Known at once when every value is; otherwise a promise of all of them (rejecting with the first failure). */
export function allMaybe(values: readonly MaybePromise<unknown>[]): MaybePromise<void> {
  if (!values.some((value) => value instanceof Promise)) return;
  return Promise.all(values).then(() => undefined);
}
