// Loads and validates the configuration once, at start-up. A bad value is
// reported as one line naming the variable (`check-config` and `serve` exit
// with code 2 on it), and the result is frozen: no code changes it later.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { NOT_NAME_CHAR } from '../protocol/names';
import { envSchema, SECRET_VARIABLES, type Env } from './schema';
import { tlsProblems } from './tls';

export type Config = Readonly<
  Env & {
    /** The `node` of welcome frames and /health: NODE_ID, or the hostname plus a random suffix. */
    nodeId: string;
    /** `serve --dev`: in-memory bus, generated secret, demo tokens, demo page. */
    dev: boolean;
    /** The package version, reported by /health. */
    version: string;
  }
>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}

export interface LoadOptions {
  dev?: boolean;
  /** Generated secret for dev mode when no key is configured. */
  devSecret?: string;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { version } = require('../../../package.json') as { version: string };

/** Validates `env` (normally process.env); throws ConfigError listing every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv, options: LoadOptions = {}): Config {
  const input: Record<string, string | undefined> = {};
  for (const key of Object.keys(envSchema.shape)) input[key] = env[key];
  const parsed = envSchema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? '?');
      const shown = SECRET_VARIABLES.has(name) ? '(redacted)' : JSON.stringify(input[name] ?? '');
      return `${name}: ${issue.message} (got ${shown})`;
    });
    // Report a missing key too, so an operator fixes everything in one pass.
    if (options.dev !== true && KEY_SOURCES.every((k) => (input[k] ?? '').trim() === '')) problems.push(MISSING_KEY);
    throw new ConfigError(problems);
  }
  const values = { ...parsed.data };
  const dev = options.dev === true;
  if (dev && !hasVerificationKey(values)) values.JWT_SECRET = options.devSecret ?? randomBytes(32).toString('base64url');
  const problems = crossFieldProblems(values);
  if (problems.length > 0) throw new ConfigError(problems);
  const nodeId = values.NODE_ID ?? `${hostname().replace(NOT_NAME_CHAR, '-').slice(0, 100)}-${randomBytes(3).toString('hex')}`;
  return Object.freeze({ ...values, DEMO: values.DEMO || dev, nodeId, dev, version });
}

function hasVerificationKey(env: Env): boolean {
  return KEY_SOURCES.some((k) => env[k] !== undefined);
}

const KEY_SOURCES = ['JWT_SECRET', 'JWT_PUBLIC_KEY', 'JWT_PUBLIC_KEY_FILE', 'JWT_JWKS_URL'] as const;
const MISSING_KEY = `JWT_SECRET: a JWT key is required (set one of ${KEY_SOURCES.join(', ')}, or run serve --dev)`;

function crossFieldProblems(env: Env): string[] {
  const problems: string[] = [];
  const given = KEY_SOURCES.filter((k) => env[k] !== undefined);
  if (given.length === 0) problems.push(MISSING_KEY);
  if (given.length > 1) problems.push(`${given[1]}: only one JWT key source may be set (also set: ${given[0]})`);
  if (env.JWT_SECRET !== undefined && Buffer.byteLength(env.JWT_SECRET) < 32)
    problems.push('JWT_SECRET: must be at least 32 bytes (256 bits) for HS256');
  const redisModes = [
    env.REDIS_URL !== undefined && 'REDIS_URL',
    env.REDIS_SENTINELS.length > 0 && 'REDIS_SENTINELS',
    env.REDIS_CLUSTER_NODES.length > 0 && 'REDIS_CLUSTER_NODES',
  ].filter((m): m is string => m !== false);
  if (redisModes.length > 1) problems.push(`${redisModes[1]}: only one Redis topology may be set (also set: ${redisModes[0]})`);
  if (env.REDIS_SENTINELS.length > 0 && env.REDIS_SENTINEL_NAME === undefined)
    problems.push('REDIS_SENTINEL_NAME: required with REDIS_SENTINELS (the master group name)');
  for (const name of ['REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'] as const) {
    const bad = env[name].find((hostPort) => !/^[^\s:]+:\d{1,5}$/.test(hostPort));
    if (bad !== undefined) problems.push(`${name}: "${bad}" is not host:port`);
  }
  if (env.METRICS_PORT !== 0 && env.METRICS_PORT === env.PORT && env.PORT !== 0)
    problems.push(`METRICS_PORT: must differ from PORT (${env.PORT})`);
  problems.push(...tlsProblems(env));
  return problems;
}

/** The effective configuration for display: secrets redacted. */
export function redactedConfig(config: Config): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    out[key] = SECRET_VARIABLES.has(key) && value !== undefined ? '(redacted)' : value;
  }
  return out;
}
