// pino factory. Structured JSON on stdout; tokens, Authorization headers and
// query strings are redacted wherever they appear in a log record, and no
// code path logs an IP address (SPEC §2, README "Security").
import pino, { type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** Field paths censored in every record, as a second line of defence behind "never log them". */
export const REDACT_PATHS = [
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'query',
  '*.query',
  'ip',
  '*.ip',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: undefined,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/** A URL as it may be logged: path only, the query (which may hold `?token=`) cut off. */
export function loggableUrl(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}
