// `switchboard check-config`: prints the effective configuration with secrets
// redacted, or one line per bad variable and exit code 2.
import { ConfigError, loadConfig, redactedConfig } from '../config/load';
import { parseEnvFlags } from './env-flags';

export function checkConfigCommand(args: string[]): number {
  const { env, booleans } = parseEnvFlags(args, ['dev']);
  try {
    const config = loadConfig(env, { dev: booleans.dev === true });
    process.stdout.write(`${JSON.stringify(redactedConfig(config), null, 2)}\n`);
    return 0;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const problem of error.problems) process.stderr.write(`${problem}\n`);
    return 2;
  }
}
