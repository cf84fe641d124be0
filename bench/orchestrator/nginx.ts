// nginx for W6, in two roles: the back end every W6 path ends at (a short text
// body, and files sent with sendfile), and the reference reverse proxy
// (`proxy_pass` with upstream keepalive) that the tunnel is compared with.
//
// Each instance has its own prefix in the run's temporary folder (config, pid,
// logs, temp paths: nothing under /etc or /var), runs in the foreground
// (`daemon off`) as the leader of a process group of its own, and is stopped by
// that PID: SIGTERM, then SIGKILL to the group, so no worker outlives it.
//
// One worker each (`worker_processes 1`): the machine has 2 cores shared by the
// load generator, the back end and the system under test, and a Switchboard
// node is one JavaScript thread; a single-worker nginx is the like-for-like
// single-threaded proxy (more workers would only fight the others for the same
// two cores). access_log off (the nodes log no requests either);
// keepalive_requests raised so that neither nginx closes wrk's or its
// upstream's keep-alive connections every 1,000 requests (uWS and the sidecar's
// undici pool never do).
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import path from 'node:path';
import { Child, childPids, freePort, sleep } from './processes';
import { HOST } from './paths';

export interface Nginx {
  name: string;
  port: number;
  child: Child;
  /** The worker's PID (the master only supervises): the process that does the work. */
  worker: number;
}

/** The body of /small: a short text answer, as a health check or small API call would return. */
export const SMALL_BODY = 'hello from the back end\n';

function mainConfig(dir: string, port: number, locations: string[], httpExtra: string[] = []): string {
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((k) => `  ${k}_temp_path ${path.join(dir, `${k}_temp`)};`);
  return [
    'worker_processes 1;',
    'daemon off;',
    `pid ${path.join(dir, 'nginx.pid')};`,
    `error_log ${path.join(dir, 'error.log')} warn;`,
    'events { worker_connections 4096; }',
    'http {',
    '  access_log off;',
    '  keepalive_requests 1000000;',
    ...temp,
    ...httpExtra.map((line) => `  ${line}`),
    '  server {',
    `    listen ${HOST}:${port};`,
    ...locations.map((line) => `    ${line}`),
    '  }',
    '}',
    '',
  ].join('\n');
}

/**
 * The back end: GET /small answers SMALL_BODY from the config (no file read);
 * any other path is a file under `root` (sendfile).
 */
export function backendConfig(dir: string, port: number, root: string): string {
  return mainConfig(dir, port, [
    `location = /small { default_type text/plain; return 200 "${SMALL_BODY.replace('\n', '\\n')}"; }` /* nginx reads \n in quotes as a newline */,
    `location / { root ${root}; sendfile on; }`,
  ]);
}

/** The reference proxy: `<prefix>/<rest>` → the back end's `/<rest>`, HTTP/1.1 over a keep-alive pool. */
export function proxyConfig(dir: string, port: number, upstreamPort: number, prefix: string): string {
  return mainConfig(
    dir,
    port,
    [`location ${prefix}/ { proxy_pass http://backend/; proxy_http_version 1.1; proxy_set_header Connection ""; }`],
    [`upstream backend { server ${HOST}:${upstreamPort}; keepalive 64; keepalive_requests 1000000; }`],
  );
}

/** The status of GET `pathname`, or undefined when nothing answers yet. */
export function httpStatus(port: number, pathname: string, timeoutMs = 2000): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = request({ host: HOST, port, path: pathname, agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

/** Polls GET `pathname` until it answers `status`; throws after `timeoutMs` or when `child` exits. */
export async function awaitStatus(child: Child, port: number, pathname: string, status: number, timeoutMs: number): Promise<void> {
  let exited = false;
  void child.exited.then(() => (exited = true));
  const deadline = performance.now() + timeoutMs;
  let last: number | undefined;
  while (performance.now() < deadline && !exited) {
    last = await httpStatus(port, pathname);
    if (last === status) return;
    await sleep(50);
  }
  throw new Error(`${child.name}: GET ${pathname} did not answer ${status} within ${timeoutMs} ms (last: ${last ?? 'no answer'}); stderr: ${child.stderr}`);
}

/**
 * Starts nginx with the config `config(dir, port)` in `dir` (created, readable
 * by the worker: nginx run as root drops its worker to `nobody`), and waits for
 * GET `readyPath` to answer 200.
 */
export async function startNginx(name: string, dir: string, config: (dir: string, port: number) => string, readyPath: string): Promise<Nginx> {
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  const port = await freePort();
  const file = path.join(dir, 'nginx.conf');
  writeFileSync(file, config(dir, port));
  // -e: the error log before the config is read (the compiled-in one is under /var/log).
  const child = new Child(name, 'nginx', ['-p', dir, '-c', file, '-e', path.join(dir, 'error.log')], { PATH: process.env.PATH }, 'ignore', true);
  await awaitStatus(child, port, readyPath, 200, 10_000);
  const worker = childPids(child.pid)[0];
  if (worker === undefined) throw new Error(`${name}: no worker process under ${child.pid}`);
  return { name, port, child, worker };
}
