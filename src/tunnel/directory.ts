// Where a public request for a path goes: this node's joined sidecars, and
// through the registry the other nodes' ones; the least busy of them.
//
// "Least busy" is least in flight *from this node* (this node's count of
// requests it has open on each sidecar), as every load balancer instance
// judges it: no cross-node bookkeeping per request, and with requests spread
// over the nodes by the load balancer the sidecars' loads even out. Ties go
// to a sidecar on this node (no hop through Redis), then at random.
//
// Other nodes' routes are cached for ROUTE_CACHE_MS: a request needs no Redis
// round trip to find its sidecar. A cached route can be stale (the sidecar
// left): its node answers `gone`, the route is dropped, and the request tries
// the next one — so a stale route costs a hop, never a failed request.
import type { Logger } from '../log/logger';
import type { TunnelTarget } from './exchange';
import type { TunnelRegistry, TunnelRoute } from './registry';

/** What the directory needs of a sidecar on this node. */
export interface LocalSidecar extends TunnelTarget {
  readonly id: string;
  readonly pathId: string;
  /** Told to drain: used only when no other sidecar serves the path. */
  readonly isDraining: boolean;
}

export interface TunnelDirectoryDeps {
  nodeId: string;
  registry: TunnelRegistry;
  /** The target that relays to a sidecar on another node (remote-target.ts). */
  remoteTarget: (route: TunnelRoute, pathId: string) => TunnelTarget;
  logger: Logger;
}

const ROUTE_CACHE_MS = 1000;
/** Paths whose routes are cached at once; past it the oldest are forgotten. */
const ROUTE_CACHE_SIZE = 10_000;

export class TunnelDirectory {
  private readonly local = new Map<string, Set<LocalSidecar>>();
  private readonly byId = new Map<string, LocalSidecar>();
  private readonly inFlight = new Map<string, number>();
  private readonly cache = new Map<string, { routes: TunnelRoute[]; until: number }>();

  constructor(private readonly deps: TunnelDirectoryDeps) {}

  /** Publishes a joined sidecar; rejects when the registry is down (the join fails). */
  async add(sidecar: LocalSidecar): Promise<void> {
    await this.deps.registry.add(sidecar.pathId, sidecar.id);
    let set = this.local.get(sidecar.pathId);
    if (set === undefined) this.local.set(sidecar.pathId, (set = new Set()));
    set.add(sidecar);
    this.byId.set(sidecar.id, sidecar);
  }

  /** Withdraws a sidecar at once from this node's choices, and from the registry (later, if Redis is down). */
  remove(sidecar: LocalSidecar): void {
    const set = this.local.get(sidecar.pathId);
    set?.delete(sidecar);
    if (set?.size === 0) this.local.delete(sidecar.pathId);
    this.byId.delete(sidecar.id);
    void this.deps.registry.remove(sidecar.pathId, sidecar.id);
  }

  /** Whether the registry lists another sidecar for `sidecar`'s path (its replacement joined); false when it cannot be read. */
  async servedElsewhere(sidecar: LocalSidecar): Promise<boolean> {
    try {
      return (await this.deps.registry.routes(sidecar.pathId)).some((route) => route.sidecar !== sidecar.id);
    } catch {
      return false;
    }
  }

  /** This node's sidecar with that id, for a request another node relays here. */
  sidecar(id: string): LocalSidecar | undefined {
    return this.byId.get(id);
  }

  /** This node's joined sidecars (health's `tunnels`). */
  get localCount(): number {
    return this.byId.size;
  }

  /**
   * The least busy sidecar for `pathId` not in `tried`, counted in flight already (call `ended`
   * when done with it): requests picking at the same moment then see each other. Undefined when
   * none is left anywhere.
   */
  async pick(pathId: string, tried: ReadonlySet<string>): Promise<TunnelTarget | undefined> {
    let picked = await this.pickFrom(pathId, tried);
    if (picked === undefined && this.cache.has(pathId)) {
      // Nothing in a cached view: a sidecar may have joined elsewhere since. Ask the registry before answering no_tunnel.
      this.cache.delete(pathId);
      picked = await this.pickFrom(pathId, tried);
    }
    return picked;
  }

  private async pickFrom(pathId: string, tried: ReadonlySet<string>): Promise<TunnelTarget | undefined> {
    const candidates: TunnelTarget[] = [];
    const draining: TunnelTarget[] = [];
    for (const sidecar of this.local.get(pathId) ?? []) if (!tried.has(sidecar.key)) (sidecar.isDraining ? draining : candidates).push(sidecar);
    const localCount = candidates.length;
    for (const route of await this.remoteRoutes(pathId)) {
      const target = this.deps.remoteTarget(route, pathId);
      if (!tried.has(target.key)) candidates.push(target);
    }
    // A draining sidecar still serves when nothing else does (its replacement has not joined yet).
    const pool = candidates.length > 0 ? candidates : draining;
    let best: TunnelTarget | undefined;
    let bestLoad = Infinity;
    pool.forEach((target, index) => {
      const load = (this.inFlight.get(target.key) ?? 0) + (index < localCount ? 0 : 0.5) + Math.random() * 0.1;
      if (load < bestLoad) [best, bestLoad] = [target, load];
    });
    // Counted in the same turn it was chosen in: a pick resuming next sees it.
    if (best !== undefined) this.inFlight.set(best.key, (this.inFlight.get(best.key) ?? 0) + 1);
    return best;
  }

  ended(target: TunnelTarget): void {
    const count = (this.inFlight.get(target.key) ?? 1) - 1;
    if (count <= 0) this.inFlight.delete(target.key);
    else this.inFlight.set(target.key, count);
  }

  /** A route turned out stale (its node answered `gone`): the next request reads the registry again. */
  forget(pathId: string): void {
    this.cache.delete(pathId);
  }

  /** Other nodes' routes for the path (cached); none when the registry cannot be read (this node's sidecars still serve). */
  private async remoteRoutes(pathId: string): Promise<TunnelRoute[]> {
    const now = performance.now();
    const cached = this.cache.get(pathId);
    if (cached !== undefined && cached.until > now) return cached.routes;
    let routes: TunnelRoute[];
    try {
      routes = (await this.deps.registry.routes(pathId)).filter((route) => route.node !== this.deps.nodeId);
    } catch (error) {
      this.deps.logger.warn({ err: error }, 'tunnel registry unreadable; routing to this node’s sidecars only');
      return [];
    }
    if (this.cache.size >= ROUTE_CACHE_SIZE) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(pathId, { routes, until: now + ROUTE_CACHE_MS });
    return routes;
  }
}
