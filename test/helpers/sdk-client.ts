// A SwitchboardClient on a fake WebSocket under node:test mock timers, with
// every event it emits recorded, for the SDK's unit tests.
import type { TestContext } from 'node:test';
import { SwitchboardClient, type ClientOptions } from '../../src/client/index';
import type { ClientEvents } from '../../src/client/events';
import { fakeWebSocket, settle } from './fake-websocket';

export const EPOCH_MS = 1_700_000_000_000;
/** Heartbeat far beyond any test's clock, for tests not about heartbeats. */
export const NO_HEARTBEAT = { heartbeat_ms: 1e12 };

type Recorded = { [K in keyof ClientEvents]: [K, ClientEvents[K]] }[keyof ClientEvents];

export function sdkClient(t: TestContext, options: Partial<ClientOptions> = {}) {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: EPOCH_MS });
  const server = fakeWebSocket();
  const client = new SwitchboardClient({
    urls: ['ws://a.test/ws', 'ws://b.test/ws'],
    token: 'fixed-token',
    WebSocket: server.WebSocket,
    backoff: { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0, resetAfterMs: 5000 },
    sendTimeoutMs: 2000,
    ...options,
  });
  const events: Recorded[] = [];
  const names: (keyof ClientEvents)[] = ['connecting', 'connected', 'resume_failed', 'disconnected', 'draining', 'closed', 'signal', 'joined', 'member_joined', 'member_left', 'room_message', 'watching', 'presence', 'event', 'token_refreshed', 'error'];
  for (const name of names) client.on(name, (value) => events.push([name, value] as Recorded));
  t.after(() => client.close());
  /** The values of every recorded event `name`, in order. */
  const seen = <K extends keyof ClientEvents>(name: K): ClientEvents[K][] => events.filter((e) => e[0] === name).map((e) => e[1] as ClientEvents[K]);
  return { client, server, events, seen };
}

/** `sdkClient`, connected: the first socket has sent its welcome (heartbeats off). */
export async function connectedSdkClient(t: TestContext, options: Partial<ClientOptions> = {}) {
  const setup = sdkClient(t, options);
  void setup.client.connect().catch(() => undefined);
  await settle();
  setup.server.last().welcome(NO_HEARTBEAT);
  return { ...setup, socket: setup.server.last() };
}
