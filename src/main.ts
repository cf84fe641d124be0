// Composition root: config → dependencies → a running node. Nothing else in
// the code constructs services or reads the environment; every dependency is
// passed in through a constructor, so tests can run several nodes in one
// process (sharing one MemoryBroker or one Redis).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createVerifier } from './auth/jwt-verifier';
import type { TokenVerifier } from './auth/claims';
import { signerFromConfig } from './auth/token-signer';
import type { Bus } from './bus/bus';
import { MemoryBus } from './bus/memory-bus';
import { RedisBus } from './bus/redis-bus';
import { connectRedis, hasRedis } from './bus/redis-clients';
import type { Config } from './config/load';
import { tlsFiles } from './config/tls';
import { CLOSE } from './errors/codes';
import { adminRoutes } from './http/admin-api';
import { clientIpResolver, forwardingPeer } from './http/client-ip';
import { HealthMonitor } from './http/health';
import type { Logger } from './log/logger';
import { Metrics } from './metrics/metrics';
import { LeaseKeeper } from './presence/lease-keeper';
import { MemoryPresence } from './presence/memory-presence';
import type { PresenceStore } from './presence/presence';
import { RedisPresence } from './presence/redis-presence';
import { CLIENT_FRAME_TYPES } from './protocol/app-codec';
import { SERVER_FRAME_TYPES } from './protocol/server-frames';
import { ClusterRateLimiter } from './ratelimit/cluster-rate-limiter';
import { ConnectionLimits } from './ratelimit/connection-limits';
import { MemoryRateLimiter, type UserRateLimiter } from './ratelimit/rate-limiter';
import { Router } from './routing/router';
import { AwayKeeper } from './resume/away-keeper';
import { MemoryResumeStore } from './resume/memory-resume-store';
import { RedisResumeStore } from './resume/redis-resume-store';
import type { ResumeStore, ResumeStoreOptions } from './resume/resume-store';
import { appEndpoint } from './session/app-endpoint';
import type { ClientSession } from './session/client-session';
import { drainSessions, type Drainable } from './session/drain';
import { errorReply, type HttpRoute } from './transport/http-types';
import { assertNativeUws, UwsServer } from './transport/uws-server';
import { TunnelDirectory } from './tunnel/directory';
import { MemoryRegistry } from './tunnel/memory-registry';
import { NodeRelay } from './tunnel/node-relay';
import { publicAccess } from './tunnel/public-access';
import { publicHttpRoute } from './tunnel/public-http';
import { isTunnelHost } from './tunnel/public-request';
import { publicWebSocketEndpoint } from './tunnel/public-websocket';
import { RedisRegistry } from './tunnel/redis-registry';
import type { TunnelRegistry } from './tunnel/registry';
import { sidecarEndpoint } from './tunnel/sidecar-endpoint';
import type { SidecarSession } from './tunnel/sidecar-session';

export interface NodeOptions {
  config: Config;
  logger: Logger;
  /** Defaults to a private in-memory bus (one node). */
  bus?: Bus;
  presence?: PresenceStore;
  registry?: TunnelRegistry;
  limiter?: UserRateLimiter;
  verifier?: TokenVerifier;
  /** Replay buffers; nodes sharing an in-memory bus share these too (test clusters). */
  resumeStore?: ResumeStore;
}

export interface RunningNode {
  readonly config: Config;
  readonly port: number;
  readonly metricsPort: number | undefined;
  readonly metrics: Metrics;
  /** SIGTERM behaviour (SPEC §6.3): not ready, draining frames and 1012 spread over DRAIN_SPREAD_MS, clean exit from the bus. */
  shutdown(): Promise<void>;
  /** Immediate stop for tests: every socket closed with 1001 at once. */
  close(): Promise<void>;
}

/** How long after the last drain close a user must still be offline to be announced offline. */
const DRAIN_PRESENCE_GRACE_MS = 2000;
const DEMO_PAGE = join(__dirname, '..', '..', 'public', 'demo.html');
/** The client SDK's browser bundle, which the demo page loads; written by the build (scripts/copy-assets.mjs). */
const CLIENT_BUNDLE = join(__dirname, '..', 'public', 'switchboard-client.js');

export async function startNode(options: NodeOptions): Promise<RunningNode> {
  assertNativeUws();
  const { config, logger } = options;
  const metrics = new Metrics({ node: config.nodeId });
  metrics.initFrameTypes([...CLIENT_FRAME_TYPES, 'invalid'], SERVER_FRAME_TYPES);
  metrics.maxConnections.set(config.MAX_CONNECTIONS);
  const backend = await createBackend(config, logger, metrics);
  const bus = options.bus ?? backend.bus;
  const presence = options.presence ?? backend.presence;
  const limiter = options.limiter ?? backend.limiter;
  const registry = options.registry ?? backend.registry;
  const verifier = options.verifier ?? createVerifier(config, logger);
  const resumeStore = options.resumeStore ?? backend.resumeStore;
  const keeper = new AwayKeeper(resumeStore, metrics, logger, config.RESUME_WINDOW_S > 0);
  const router = new Router({ nodeId: config.nodeId, bus, presence, keeper, logger, metrics });
  const sessions = new Set<ClientSession>();
  const serving = new Map<string, ClientSession>();
  resumeStore.onReclaimed?.((session, result) => serving.get(session)?.reclaimed(result));
  const sidecars = new Set<SidecarSession>();
  const relay = new NodeRelay({ nodeId: config.nodeId, bus, registry, sweepMs: Math.round(config.PRESENCE_TTL_MS / 4), logger, metrics });
  const directory = new TunnelDirectory({ nodeId: config.nodeId, registry, remoteTarget: (route, pathId) => relay.target(route, pathId), logger });
  const connectionLimits = new ConnectionLimits({
    maxConnections: config.MAX_CONNECTIONS,
    maxConnectionsPerIp: config.MAX_CONNECTIONS_PER_IP,
    connectRatePerIp: config.CONNECT_RATE_PER_IP,
  });
  const health = new HealthMonitor(config, bus, metrics, logger, {
    connections: () => sessions.size,
    tunnels: () => directory.localCount,
  });

  await presence.start();
  await registry.start();
  await resumeStore.start?.();
  await relay.start(directory);
  await router.start();
  await health.start();

  const tls = tlsFiles(config);
  const server = new UwsServer({
    logger,
    tls,
    onSlowConsumer: () => metrics.slowConsumerCloses.inc(),
    isVirtualHost: (host) => isTunnelHost(host, config.TUNNEL_DOMAIN),
  });
  server.websocket(
    sidecarEndpoint({ config, logger, metrics, verifier, signer: signerFromConfig(config), sidecars, directory, handover: bus.kind === 'redis', isDraining: () => health.isDraining }),
  );
  server.websocket(
    appEndpoint({
      config,
      router,
      limiter,
      verifier,
      metrics,
      logger,
      sessions,
      serving,
      resumeStore,
      keeper,
      limits: connectionLimits,
      clientIp: clientIpResolver(config.TRUSTED_PROXIES),
      isDraining: () => health.isDraining,
    }),
  );
  const metricsRoute: HttpRoute = {
    method: 'get',
    pattern: '/metrics',
    handle: async () => ({
      status: 200,
      headers: { 'content-type': metrics.registry.contentType },
      body: await metrics.registry.metrics(),
    }),
  };
  for (const route of [...probeRoutes(health), metricsRoute, ...adminRoutes({ verifier, router, logger })]) server.route(route);
  if (config.DEMO) {
    const page = readFileSync(DEMO_PAGE);
    const bundle = readFileSync(CLIENT_BUNDLE);
    server.route({ method: 'get', pattern: '/', handle: () => ({ status: 200, headers: { 'content-type': 'text/html; charset=utf-8' }, body: page }) });
    server.route({ method: 'get', pattern: '/switchboard-client.js', handle: () => ({ status: 200, headers: { 'content-type': 'text/javascript; charset=utf-8' }, body: bundle }) });
  }
  // Everything else: a public request or WebSocket to a tunnel (/call/<path_id>/…, or a tunnel host), or 404.
  const activity = { requests: 0 };
  const publicDeps = {
    activity,
    config,
    logger,
    metrics,
    directory,
    forwarding: forwardingPeer(config.TRUSTED_PROXIES, tls !== undefined),
    access: publicAccess({ config, verifier, limiter, limits: connectionLimits, clientIp: clientIpResolver(config.TRUSTED_PROXIES), metrics }),
  };
  const publicSockets = new Set<Drainable>();
  server.websocket(publicWebSocketEndpoint({ ...publicDeps, sockets: publicSockets, isDraining: () => health.isDraining }));
  server.stream(publicHttpRoute(publicDeps));

  const port = await server.listen(config.HOST, config.PORT);
  let metricsServer: UwsServer | undefined;
  let metricsPort: number | undefined;
  if (config.METRICS_PORT !== 0) {
    // Plain HTTP even with TLS on PORT: a scrape port for the internal network (docs/operations.md, TLS).
    metricsServer = new UwsServer({ logger }).route(metricsRoute).fallback(() => errorReply('not_found', 'no such endpoint'));
    metricsPort = await metricsServer.listen(config.HOST, config.METRICS_PORT);
  }
  logger.info({ node: config.nodeId, port, tls: tls !== undefined, metricsPort, bus: bus.kind, version: config.version }, 'switchboard listening');

  let stopping: Promise<void> | undefined;
  const stop = async (spreadMs: number) => {
    const deadline = performance.now() + config.SHUTDOWN_TIMEOUT_MS;
    health.setDraining();
    router.watches.beginDrain();
    logger.info({ connections: sessions.size, spreadMs }, 'draining');
    await drainSessions([...sessions, ...publicSockets, ...sidecars], { spreadMs, timeoutMs: config.SHUTDOWN_TIMEOUT_MS, close: spreadMs > 0 ? CLOSE.draining : CLOSE.going_away });
    // Public requests this node is relaying finish too (within SHUTDOWN_TIMEOUT_MS); they need the bus.
    while (activity.requests > 0 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    // Within what is left of SHUTDOWN_TIMEOUT_MS: a detach still waiting for Redis then leaves its
    // entries to the lease, which expires (presence.close keeps it when entries remain).
    await router.settled(Math.max(0, deadline - performance.now()));
    // Clients reconnect as they are closed; give the last ones a moment before declaring anyone offline.
    await router.watches.finishDrain(spreadMs > 0 ? Math.min(DRAIN_PRESENCE_GRACE_MS, config.SHUTDOWN_TIMEOUT_MS) : 0);
    // Sidecars still busy when the time is up are closed now: what they carry fails (502), never hangs.
    for (const sidecar of sidecars) sidecar.close(CLOSE.going_away);
    health.stop();
    server.stopListening();
    metricsServer?.stopListening();
    relay.stop();
    // The registry's routes go before the lease they share with presence may go.
    await registry.close();
    await resumeStore.close();
    await presence.close();
    await bus.close();
    await backend.close();
    connectionLimits.close();
    logger.info('stopped');
  };
  return {
    config,
    port,
    metricsPort,
    metrics,
    shutdown: () => (stopping ??= stop(config.DRAIN_SPREAD_MS)),
    close: () => (stopping ??= stop(0)),
  };
}

interface Backend {
  bus: Bus;
  presence: PresenceStore;
  /** Replay buffers for resume (SPEC §3.9). */
  resumeStore: ResumeStore;
  /** Which sidecars serve which path_id, cluster-wide. */
  registry: TunnelRegistry;
  limiter: UserRateLimiter;
  close(): Promise<void>;
}

/** The in-memory trio for one node, or the Redis trio for a cluster (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES). */
async function createBackend(config: Config, logger: Logger, metrics: Metrics): Promise<Backend> {
  if (!hasRedis(config)) {
    const limiter = new MemoryRateLimiter({ points: config.RATE_LIMIT_POINTS, durationS: config.RATE_LIMIT_DURATION_S });
    return {
      bus: new MemoryBus(),
      presence: new MemoryPresence(),
      resumeStore: new MemoryResumeStore(resumeOptions(config)),
      registry: new MemoryRegistry(config.nodeId),
      limiter,
      close: () => Promise.resolve(limiter.close()),
    };
  }
  const redis = await connectRedis(config, logger);
  const limiter = new ClusterRateLimiter({
    metrics,
    redis: redis.commands,
    prefix: config.REDIS_PREFIX,
    points: config.RATE_LIMIT_POINTS,
    durationS: config.RATE_LIMIT_DURATION_S,
    logger,
  });
  // One lease per node: presence and the tunnel registry hang their entries on it.
  const lease = new LeaseKeeper({ redis: redis.commands, prefix: config.REDIS_PREFIX, nodeId: config.nodeId, ttlMs: config.PRESENCE_TTL_MS, logger });
  return {
    bus: new RedisBus({ commands: redis.commands, subscriber: redis.subscriber, prefix: config.REDIS_PREFIX, sharded: redis.sharded, shardsUp: redis.shardsUp, logger }),
    presence: new RedisPresence({ redis: redis.commands, prefix: config.REDIS_PREFIX, lease, logger }),
    resumeStore: new RedisResumeStore({ redis: redis.commands, prefix: config.REDIS_PREFIX, lease, logger, ...resumeOptions(config) }),
    registry: new RedisRegistry({ redis: redis.commands, prefix: config.REDIS_PREFIX, lease, logger }),
    limiter,
    close: async () => {
      limiter.close();
      await redis.close();
    },
  };
}

function resumeOptions(config: Config): ResumeStoreOptions {
  return { node: config.nodeId, windowMs: config.RESUME_WINDOW_S * 1000, limit: config.RESUME_BUFFER };
}

function probeRoutes(health: HealthMonitor): HttpRoute[] {
  const routes: HttpRoute[] = [];
  for (const path of ['/health', '/healthz']) routes.push({ method: 'get', pattern: path, handle: () => health.health() });
  for (const path of ['/ready', '/readyz']) routes.push({ method: 'get', pattern: path, handle: () => health.readiness() });
  for (const path of ['/live', '/livez'])
    routes.push({ method: 'get', pattern: path, handle: () => ({ status: 200, headers: { 'content-type': 'application/json' }, body: '{"status":"alive"}' }) });
  return routes;
}
