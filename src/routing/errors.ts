/** Raised when the bus failed and the operation could not be completed cluster-wide. */
export class BusUnavailableError extends Error {
  constructor(cause: unknown) {
    super('cluster bus unavailable', { cause });
    this.name = 'BusUnavailableError';
  }
}
