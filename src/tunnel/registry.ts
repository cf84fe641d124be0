// Which sidecars serve which path_id, cluster-wide: the tunnel registry.
// Memory implementation in memory-registry.ts (one node); the Redis one hangs
// every entry on the node's lease (presence/node-lease.ts), so the sidecars of
// a node that dies stop being routed to within PRESENCE_TTL_MS.
//
// The registry says where a sidecar *was* joined; the node that holds it is
// the judge of whether it still is (a request for a sidecar that left answers
// `gone`, and the relay tries another route). So a route may be stale for a
// moment, but never routes a request into a hang.

/** One joined sidecar: the node holding its socket and its id there (unique per connection). */
export interface TunnelRoute {
  node: string;
  sidecar: string;
}

export interface TunnelRegistry {
  /** Starts background work (the lease); resolves once this node can register. */
  start(): Promise<void>;
  /**
   * Publishes that `sidecar`, on this node, serves `pathId`. Resolves once other nodes can find it;
   * rejects when the store is down (the sidecar's join fails, and nothing is kept).
   * Writes for one (pathId, sidecar) apply in call order: a `remove` made while its `add` is in
   * flight leaves no entry, whichever finishes first.
   */
  add(pathId: string, sidecar: string): Promise<void>;
  /** Withdraws the route. Never rejects: when the store is down, the registry removes it later. */
  remove(pathId: string, sidecar: string): Promise<void>;
  /** The sidecars serving `pathId` on live nodes (this node's included). Rejects when the store is down. */
  routes(pathId: string): Promise<TunnelRoute[]>;
  /** Removes this node's routes (or leaves them to the lease) and stops. */
  close(): Promise<void>;
}
