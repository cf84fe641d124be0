// `switchboard tunnel`: Switchboard's own sidecar. Connects out to a node's
// /telephone/websocket and relays the requests and WebSockets of
// /call/<path_id>/… to a local back end (src/sidecar/, docs/tunnel-sidecar.md).
// Exit codes: 2 bad settings, 1 token refused at the first connect (or a
// failure), 0 after SIGTERM/SIGINT.
import { parseArgs } from 'node:util';
import { createLogger } from '../log/logger';
import { tunnelConfig, TUNNEL_SETTINGS, type TunnelSetting } from '../sidecar/options';
import { Sidecar, TokenRefusedError } from '../sidecar/sidecar';

export async function tunnelCommand(args: string[]): Promise<number> {
  const options = Object.fromEntries(Object.keys(TUNNEL_SETTINGS).map((name) => [name, { type: 'string' as const }]));
  const { values } = parseArgs({ args, options, strict: true, allowPositionals: false });
  const flags: Partial<Record<TunnelSetting, string>> = {};
  for (const name of Object.keys(TUNNEL_SETTINGS) as TunnelSetting[]) {
    const value = values[name];
    if (typeof value === 'string') flags[name] = value;
  }
  const result = tunnelConfig(flags, process.env, Date.now() / 1000);
  if (!result.ok) {
    for (const problem of result.problems) process.stderr.write(`switchboard tunnel: ${problem}\n`);
    return 2;
  }
  const { config } = result;
  const logger = createLogger(config.logLevel);
  const sidecar = new Sidecar({ settings: config, logger });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (++signals > 1) process.exit(1);
    logger.info({ signal }, 'tunnel stopping');
    sidecar.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'tunnel stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    await sidecar.start();
  } catch (error) {
    if (!(error instanceof TokenRefusedError)) throw error;
    process.stderr.write(`switchboard tunnel: ${error.message}\n`);
    return 1;
  }
  // Runs until a signal.
  return -1;
}
