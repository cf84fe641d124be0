// The configuration schema: every environment variable Switchboard reads,
// its type, default and limits, in one place. `loadConfig` validates the
// environment once at start-up and returns a frozen object; nothing else in
// the code reads `process.env`.
import { z } from 'zod';
import { NAME_PATTERN, NAME_RULE } from '../protocol/names';

const MiB = 1024 * 1024;

/** A non-negative integer given as a decimal string; `belowMin` says why a smaller value is refused. */
const int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER, belowMin = `must be at least ${min}`) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, 'must be a non-negative integer')
    .transform(Number)
    .pipe(z.number().int().min(min, belowMin).max(max, `must be at most ${max}`))
    .default(def);

/** Loopback hosts, where a plain http:// endpoint cannot be read or changed on the way (a local JWKS in dev and tests). */
const LOOPBACK_HOST = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

/** An https:// URL, or http:// to a loopback host: keys fetched over plain HTTP could be swapped by anyone on the path. */
const keysUrl = z.string().refine((value) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOST.test(url.hostname));
}, 'must be an https:// URL (plain http:// only to localhost, 127.0.0.0/8 or [::1])');

const bool = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'], 'must be true or false')
    .transform((v) => v === 'true' || v === '1' || v === 'yes')
    .default(def);

const optionalString = z
  .string()
  .trim()
  .optional()
  .transform((v) => (v === '' ? undefined : v));

const list = z
  .string()
  .optional()
  .transform((v) =>
    (v ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  );

/** The environment variables, their defaults and validation. Keys are the variable names. */
export const envSchema = z.object({
  PORT: int(8080, 0, 65535),
  HOST: z.string().trim().min(1).default('0.0.0.0'),
  NODE_ID: z
    .string()
    .trim()
    .regex(NAME_PATTERN, `must be ${NAME_RULE}`)
    .optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  METRICS_PORT: int(0, 0, 65535),
  DEMO: bool(false),

  // TLS on PORT (HTTPS and WSS): both files or neither; METRICS_PORT stays plain HTTP.
  TLS_CERT_FILE: optionalString,
  TLS_KEY_FILE: optionalString,
  TLS_KEY_PASSPHRASE: optionalString,

  // Authentication (SPEC §2). Exactly one key source is required outside dev mode.
  JWT_SECRET: optionalString,
  JWT_PUBLIC_KEY: optionalString,
  JWT_PUBLIC_KEY_FILE: optionalString,
  JWT_JWKS_URL: optionalString.pipe(keysUrl.optional()),
  JWT_PRIVATE_KEY: optionalString,
  JWT_ISSUER: optionalString,
  JWT_AUDIENCE: optionalString,
  JWT_REQUIRE_EXP: bool(true),

  // Cluster bus. Unset: the in-memory bus (one node).
  REDIS_URL: optionalString.pipe(
    z
      .string()
      .regex(/^rediss?:\/\//, 'must start with redis:// or rediss://')
      .optional(),
  ),
  REDIS_SENTINELS: list,
  REDIS_SENTINEL_NAME: optionalString,
  REDIS_CLUSTER_NODES: list,
  REDIS_USERNAME: optionalString,
  REDIS_PASSWORD: optionalString,
  REDIS_TLS: bool(false),
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{0,64}$/, 'must be 0-64 chars of [A-Za-z0-9_.:-]')
    .default('sb:'),

  // App protocol limits (SPEC §3).
  MAX_PAYLOAD_BYTES: int(65536, 256, 16 * MiB),
  MAX_BUFFERED_BYTES: int(MiB, 1024),
  IDLE_TIMEOUT_S: int(120, 8, 960),
  MAX_ROOMS_PER_CONNECTION: int(100, 1),
  MAX_WATCHED_USERS: int(1000, 1),
  PRESENCE_TTL_MS: int(15000, 1000),
  RESUME_WINDOW_S: int(60, 0),
  RESUME_BUFFER: int(1000, 0),

  // Rate and connection limits (SPEC §3.7). The per-user frame limit cannot be turned off: 0 points
  // would refuse every frame, and a 0 s window would never end. The connection limits are 0 = off.
  RATE_LIMIT_POINTS: int(100, 1, undefined, 'must be at least 1 (0 would refuse every frame; the frame limit has no off)'),
  RATE_LIMIT_DURATION_S: int(1, 1),
  RATE_LIMIT_STRIKES: int(50, 1),
  MAX_CONNECTIONS_PER_IP: int(0),
  CONNECT_RATE_PER_IP: int(0),
  MAX_CONNECTIONS: int(0),
  TRUSTED_PROXIES: list,

  // Tunnels (SPEC §5).
  TUNNEL_DOMAIN: optionalString,
  REQUEST_TIMEOUT_MS: int(30000, 1),
  MAX_RESPONSE_BYTES: int(100 * MiB, 1),
  MAX_REQUEST_BYTES: int(10 * MiB, 1),
  TUNNEL_HEARTBEAT_TIMEOUT_MS: int(60000, 1000),
  TUNNEL_TOKEN_TTL_S: int(3600, 60),
  /** Request bodies over this (or of unknown length) stream to sidecars that speak `stream`. */
  STREAM_THRESHOLD_BYTES: int(64 * 1024, 1024),
  /** `required`: /call/<path_id> demands an app JWT whose `tunnels` claim allows the path. */
  TUNNEL_PUBLIC_AUTH: z.enum(['open', 'required']).default('open'),
  /** The cookie a browser may carry the public-side token in (besides Authorization and ?token=). */
  TUNNEL_AUTH_COOKIE: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, _ and - only').default('switchboard_token'),

  // Shutdown (SPEC §6.3).
  SHUTDOWN_TIMEOUT_MS: int(30000, 0),
  DRAIN_SPREAD_MS: int(5000, 0),
});

export type Env = z.output<typeof envSchema>;

/** Variables whose values never appear in output (check-config, logs). */
export const SECRET_VARIABLES: ReadonlySet<string> = new Set(['JWT_SECRET', 'JWT_PRIVATE_KEY', 'REDIS_URL', 'REDIS_PASSWORD', 'TLS_KEY_PASSPHRASE']);

/** Documentation shown by `check-config --help` and kept in step with README by a test. */
export const ENV_NAMES = Object.keys(envSchema.shape) as (keyof Env)[];
