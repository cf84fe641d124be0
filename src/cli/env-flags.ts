// `serve --flag value` equivalents of the environment variables (SPEC §6.4):
// MAX_PAYLOAD_BYTES ⇔ --max-payload-bytes. Flags override the environment.
import { parseArgs } from 'node:util';
import { ENV_NAMES } from '../config/schema';

export const flagName = (envName: string) => envName.toLowerCase().replace(/_/g, '-');

export interface ParsedFlags {
  env: NodeJS.ProcessEnv;
  booleans: Record<string, boolean>;
}

/** Parses `args` into an environment (process.env overlaid with the flags) and the given boolean switches. */
export function parseEnvFlags(args: string[], switches: readonly string[]): ParsedFlags {
  const options: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const name of ENV_NAMES) options[flagName(name)] = { type: 'string' };
  for (const name of switches) options[name] = { type: 'boolean' };
  const { values } = parseArgs({ args, options, strict: true, allowPositionals: false });
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ENV_NAMES) {
    const value = values[flagName(name)];
    if (typeof value === 'string') env[name] = value;
  }
  const booleans: Record<string, boolean> = {};
  for (const name of switches) booleans[name] = values[name] === true;
  return { env, booleans };
}
