// `switchboard token`: mint app, admin and tunnel tokens with the configured
// signing key, for tests, the demo and sidecars (TELEPHONE_TOKEN).
import { parseArgs } from 'node:util';
import { isRoomPattern, isTunnelPattern } from '../auth/jwt-verifier';
import { signerFromConfig } from '../auth/token-signer';
import { ConfigError, loadConfig } from '../config/load';
import { isValidName, NAME_RULE, PATH_ID_PATTERN, PATH_ID_RULE } from '../protocol/names';
import { ROLES, type Role } from '../auth/claims';

export function tokenCommand(args: string[]): number {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      user: { type: 'string' },
      device: { type: 'string' },
      roles: { type: 'string' },
      rooms: { type: 'string' },
      tunnels: { type: 'string' },
      ttl: { type: 'string', default: '3600' },
      admin: { type: 'boolean' },
      tunnel: { type: 'string' },
    },
  });
  const fail = (message: string) => {
    process.stderr.write(`switchboard token: ${message}\n`);
    return 2;
  };
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const problem of error.problems) process.stderr.write(`${problem}\n`);
    return 2;
  }
  const signer = signerFromConfig(config);
  if (signer === undefined) return fail('no signing key: set JWT_SECRET or JWT_PRIVATE_KEY');
  if (!/^\d+$/.test(values.ttl) || Number(values.ttl) < 1) return fail('--ttl must be a positive number of seconds');
  const ttlS = Number(values.ttl);

  if (values.tunnel !== undefined) {
    if (!PATH_ID_PATTERN.test(values.tunnel)) return fail(`--tunnel must be ${PATH_ID_RULE}`);
    process.stdout.write(`${signer.signTunnel({ pathId: values.tunnel, user: values.user ?? `tunnel-${values.tunnel}`, ttlS })}\n`);
    return 0;
  }
  const user = values.user ?? (values.admin === true ? 'admin' : undefined);
  if (user === undefined || !isValidName(user)) return fail(`--user must be ${NAME_RULE}`);
  if (values.device !== undefined && !isValidName(values.device)) return fail(`--device must be ${NAME_RULE}`);
  const roles = new Set<Role>(values.admin === true ? ['admin'] : []);
  for (const role of (values.roles ?? '').split(',').filter((r) => r !== '')) {
    if (!(ROLES as readonly string[]).includes(role)) return fail(`unknown role "${role}" (known: ${ROLES.join(', ')})`);
    roles.add(role as Role);
  }
  const rooms = values.rooms?.split(',').filter((r) => r !== '');
  if (rooms?.some((r) => !isRoomPattern(r))) return fail('--rooms holds an invalid room pattern');
  const tunnels = values.tunnels?.split(',').filter((p) => p !== '');
  if (tunnels?.some((p) => !isTunnelPattern(p))) return fail('--tunnels holds an invalid path_id pattern');
  process.stdout.write(`${signer.signApp({ user, device: values.device, roles: [...roles], rooms, tunnels, ttlS })}\n`);
  return 0;
}
