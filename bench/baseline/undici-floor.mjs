// The floor under W6's sidecar: what one Node process spends to fetch a small
// response from the back end with undici alone, with no tunnel around it — the
// dispatch API with a bare handler (no stream, promise or AbortController per
// request beyond one promise here), 50 requests in flight like wrk's 50
// connections. Prints requests/s, cores used and CPU microseconds per request.
//
//   node bench/baseline/undici-floor.mjs http://127.0.0.1:PORT/small [seconds]
//
// Start the back end the way W6 does (nginx, `return 200` of 24 bytes), or
// point it at any HTTP server. Only loopback URLs are accepted.
import { Pool } from 'undici';

const target = new URL(process.argv[2] ?? '');
if (!['127.0.0.1', 'localhost', '[::1]'].includes(target.hostname)) throw new Error('give a loopback URL, like http://127.0.0.1:8081/small');
const seconds = Number(process.argv[3] ?? 4);
const pool = new Pool(target.origin, { connections: 64 });
const until = Date.now() + seconds * 1000;
let done = 0;

function fetchOnce() {
  return new Promise((resolve, reject) => {
    pool.dispatch(
      { method: 'GET', path: target.pathname, headers: { 'user-agent': 'undici-floor' } },
      {
        onConnect() {},
        onHeaders: () => true,
        onData: () => true,
        onComplete: resolve,
        onError: reject,
      },
    );
  });
}

async function worker() {
  while (Date.now() < until) {
    await fetchOnce();
    done++;
  }
}

const cpuBefore = process.cpuUsage();
const started = performance.now();
await Promise.all(Array.from({ length: 50 }, worker));
const cpu = process.cpuUsage(cpuBefore);
const elapsedS = (performance.now() - started) / 1000;
const cpuUs = cpu.user + cpu.system;
console.log(
  JSON.stringify({ requests_per_s: Math.round(done / elapsedS), cores: +(cpuUs / 1e6 / elapsedS).toFixed(2), cpu_us_per_request: +(cpuUs / done).toFixed(1) }),
);
await pool.close();
