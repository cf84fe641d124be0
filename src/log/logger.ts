// pino factory. Structured JSON on stdout; tokens, Authorization headers and
// query strings are redacted wherever they appear in a log record, and no
// code path logs an IP address (SPEC §2, README "Security").
import pino, { type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** The names censored at the top of a record (and an Authorization header in a top-level `headers`). */
export const TOP_LEVEL_REDACT_PATHS = ['token', 'authorization', 'headers.authorization', 'query', 'ip'] as const;

/** Field paths censored in every record, as a second line of defence behind "never log them": the top-level names, and the same one level down. */
export const REDACT_PATHS = [...TOP_LEVEL_REDACT_PATHS, ...TOP_LEVEL_REDACT_PATHS.map((p) => `*.${p}`)];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: undefined,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? stdoutDestination(),
  );
}

/**
 * stdout written asynchronously: a line goes out at once when the previous
 * write has finished, and lines logged meanwhile go together in the next
 * write. Synchronous writes cost one write(2) per line, which under a tunnel's
 * per-request audit records was a third of a node's throughput (bench W6).
 * pino flushes what is pending when the process exits, also through
 * process.exit(); only a kill -9 can lose the last lines.
 */
function stdoutDestination(): DestinationStream {
  return pino.destination({ dest: 1, sync: false });
}

/** A URL as it may be logged: path only, the query (which may hold `?token=`) cut off. */
export function loggableUrl(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}
