// The tunnel registry of one node (no Redis): every sidecar is this node's,
// so the routes are simply the joined sidecars.
import type { TunnelRegistry, TunnelRoute } from './registry';

export class MemoryRegistry implements TunnelRegistry {
  private readonly routesByPath = new Map<string, Map<string, TunnelRoute>>();

  constructor(private readonly nodeId: string) {}

  start(): Promise<void> {
    return Promise.resolve();
  }

  add(pathId: string, sidecar: string): Promise<void> {
    let routes = this.routesByPath.get(pathId);
    if (routes === undefined) this.routesByPath.set(pathId, (routes = new Map<string, TunnelRoute>()));
    routes.set(sidecar, { node: this.nodeId, sidecar });
    return Promise.resolve();
  }

  remove(pathId: string, sidecar: string): Promise<void> {
    const routes = this.routesByPath.get(pathId);
    routes?.delete(sidecar);
    if (routes?.size === 0) this.routesByPath.delete(pathId);
    return Promise.resolve();
  }

  routes(pathId: string): Promise<TunnelRoute[]> {
    return Promise.resolve([...(this.routesByPath.get(pathId)?.values() ?? [])]);
  }

  close(): Promise<void> {
    this.routesByPath.clear();
    return Promise.resolve();
  }
}
