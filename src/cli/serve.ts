// `switchboard serve [--dev]`: validate the configuration, start a node, and
// turn SIGTERM/SIGINT into a graceful drain (SPEC §6.3) and exit 0.
import { signerFromConfig } from '../auth/token-signer';
import { ConfigError, loadConfig, type Config } from '../config/load';
import { tlsFiles } from '../config/tls';
import { createLogger, type Logger } from '../log/logger';
import { startNode, type RunningNode } from '../main';
import { parseEnvFlags } from './env-flags';
import { missingNodeFlags } from './node-flags';

const DEV_TOKEN_TTL_S = 24 * 3600;

export async function serveCommand(args: string[]): Promise<number> {
  const { env, booleans } = parseEnvFlags(args, ['dev']);
  const dev = booleans.dev === true;
  let config: Config;
  try {
    config = loadConfig(env, { dev });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const problem of error.problems) process.stderr.write(`${problem}\n`);
    return 2;
  }
  const logger = createLogger(config.LOG_LEVEL);
  const missing = missingNodeFlags();
  if (missing.length > 0)
    logger.warn({ missing }, 'running without the Node flags Switchboard is tuned for: idle connections cost more memory (run the switchboard binary, or set NODE_OPTIONS)');
  // Signals are handled from before the start: a SIGTERM during start-up still drains and exits 0.
  const starting = startNode({ config, logger });
  handleSignals(starting, logger);
  const node = await starting;
  if (dev) printDevTokens(config, node.port);
  return -1;
}

function printDevTokens(config: Config, port: number): void {
  const signer = signerFromConfig(config);
  if (signer === undefined) return;
  const secure = tlsFiles(config) !== undefined;
  const base = `${secure ? 'https' : 'http'}://localhost:${port}`;
  const wsBase = `${secure ? 'wss' : 'ws'}://localhost:${port}`;
  const alice = signer.signApp({ user: 'alice', device: 'alice-laptop', ttlS: DEV_TOKEN_TTL_S });
  const bob = signer.signApp({ user: 'bob', device: 'bob-phone', ttlS: DEV_TOKEN_TTL_S });
  const admin = signer.signApp({ user: 'dev-admin', roles: ['admin'], ttlS: DEV_TOKEN_TTL_S });
  const tunnel = signer.signTunnel({ pathId: 'demo', user: 'dev-tunnel', ttlS: DEV_TOKEN_TTL_S });
  process.stdout.write(
    [
      '',
      'Switchboard dev mode: in-memory bus, generated secret (tokens below die with this process).',
      `  demo page, tab 1 (alice):  ${base}/?token=${alice}`,
      `  demo page, tab 2 (bob):    ${base}/?token=${bob}`,
      `  WebSocket:                 ${wsBase}/ws?token=<token>`,
      `  admin token (/v1/publish): ${admin}`,
      `  tunnel (path_id demo):     switchboard tunnel --server ${wsBase} --token ${tunnel} --to http://127.0.0.1:3000`,
      `                             then ${base}/call/demo/ reaches http://127.0.0.1:3000/`,
      '',
      '',
    ].join('\n'),
  );
}

function handleSignals(starting: Promise<RunningNode>, logger: Logger): void {
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (++signals > 1) {
      logger.warn({ signal }, 'second signal: exiting without finishing the drain');
      process.exit(1);
    }
    logger.info({ signal }, 'shutting down');
    starting.then((node) => node.shutdown()).then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('uncaughtException', (error) => {
    logger.fatal({ err: error }, 'uncaught exception');
    process.exit(1);
  });
  process.on('unhandledRejection', (reason) => {
    logger.fatal({ err: reason }, 'unhandled rejection');
    process.exit(1);
  });
}
