// The tunnel registry in one process (no Redis): the default for a single
// node. A MemoryRouteTable stands where Redis would, as a MemoryBroker does
// for buses: registries sharing one table are "nodes" of one process, so the
// registry's contract runs multi-node without Redis. Every call takes effect
// at once, so writes apply in call order trivially.
import type { TunnelRegistry, TunnelRoute } from './registry';

export class MemoryRouteTable {
  /** pathId → sidecar → the node holding it. */
  private readonly paths = new Map<string, Map<string, string>>();

  set(pathId: string, sidecar: string, node: string): void {
    let sidecars = this.paths.get(pathId);
    if (sidecars === undefined) this.paths.set(pathId, (sidecars = new Map<string, string>()));
    sidecars.set(sidecar, node);
  }

  /** Removes the route only if `node` holds it: a node withdraws nothing of another's. */
  delete(pathId: string, sidecar: string, node: string): void {
    const sidecars = this.paths.get(pathId);
    if (sidecars?.get(sidecar) !== node) return;
    sidecars.delete(sidecar);
    if (sidecars.size === 0) this.paths.delete(pathId);
  }

  routes(pathId: string): TunnelRoute[] {
    return [...(this.paths.get(pathId) ?? [])].map(([sidecar, node]) => ({ node, sidecar }));
  }
}

export class MemoryRegistry implements TunnelRegistry {
  private closed = false;
  /** This node's routes, "<pathId>/<sidecar>" (a path id has no '/'), to withdraw at close. */
  private readonly held = new Map<string, { pathId: string; sidecar: string }>();

  constructor(
    private readonly nodeId: string,
    private readonly table = new MemoryRouteTable(),
  ) {}

  start(): Promise<void> {
    return Promise.resolve();
  }

  add(pathId: string, sidecar: string): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the tunnel registry is closed'));
    this.table.set(pathId, sidecar, this.nodeId);
    this.held.set(`${pathId}/${sidecar}`, { pathId, sidecar });
    return Promise.resolve();
  }

  remove(pathId: string, sidecar: string): Promise<void> {
    this.held.delete(`${pathId}/${sidecar}`);
    this.table.delete(pathId, sidecar, this.nodeId);
    return Promise.resolve();
  }

  routes(pathId: string): Promise<TunnelRoute[]> {
    return Promise.resolve(this.table.routes(pathId));
  }

  close(): Promise<void> {
    this.closed = true;
    for (const { pathId, sidecar } of this.held.values()) this.table.delete(pathId, sidecar, this.nodeId);
    this.held.clear();
    return Promise.resolve();
  }
}
