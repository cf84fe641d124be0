#!/usr/bin/env -S node --max-semi-space-size=8
// `switchboard <command>`: serve, token, tunnel, check-config. The shebang carries
// the Node flags of node-flags.ts (a test keeps them in step), so that the
// installed `switchboard serve` runs as tuned; `node <this file>` does not,
// and `serve` says so.
import { checkConfigCommand } from './check-config';
import { serveCommand } from './serve';
import { tokenCommand } from './token';
import { tunnelCommand } from './tunnel';

const USAGE = `usage: switchboard <command> [options]

commands:
  serve [--dev] [--port N ...]   run a node (every env variable has a --flag form: MAX_PAYLOAD_BYTES → --max-payload-bytes)
  token --user U [--device D] [--roles admin,tunnel] [--rooms 'lobby,team-*'] [--ttl S]
  token --admin [--user U] [--ttl S]
  token --tunnel PATH_ID [--user U] [--ttl S]
                                 mint a token with the configured key (JWT_SECRET or JWT_PRIVATE_KEY)
  tunnel --server ws://HOST:PORT --token T --to http://127.0.0.1:3000 [--heartbeat-interval-ms N] [--log-level L]
                                 relay /call/<path_id>/... to a local back end (env: SWITCHBOARD_SERVER,
                                 SWITCHBOARD_TOKEN, TUNNEL_TO; prefer the env variable for the token)
  check-config                   print the effective configuration (secrets redacted); exit 2 on bad values
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serveCommand(rest);
    case 'token':
      return tokenCommand(rest);
    case 'tunnel':
      return tunnelCommand(rest);
    case 'check-config':
      return checkConfigCommand(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`switchboard: unknown command "${command}"\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // serve and tunnel keep running until a signal; the other commands exit with their code.
    if (code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`switchboard: ${error instanceof Error ? error.message : String(error)}\n`);
    // A bad flag is a usage error (exit 2, like a bad variable); anything else is a failure.
    const usage = error instanceof Error && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS_');
    if (usage) process.stderr.write(USAGE);
    process.exitCode = usage ? 2 : 1;
  },
);
