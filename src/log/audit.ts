// Security events as audit records: one `info` line each with `audit: true`
// and a stable `event` name, so a log pipeline can route them by field.
// The event names are part of the operations contract (README "Audit log").
import { TOP_LEVEL_REDACT_PATHS, type Logger } from './logger';

export const AUDIT_EVENTS = [
  'auth_failed',
  'rate_limit_close',
  'takeover',
  'admin_publish',
  'admin_auth_failed',
  'connection_rejected',
  'tunnel_request',
  'tunnel_websocket',
] as const;

export type AuditEvent = (typeof AUDIT_EVENTS)[number];

/** Audit fields are flat by type, so redacting the top-level names covers every path a record can have. */
export type AuditFields = Record<string, string | number | boolean | undefined>;

/**
 * Each logger's audit child. It redacts the top-level paths only: the logger's
 * wildcard paths (`*.token`, …) walk every field of every record, which made
 * redaction the larger half of an audit line's cost, and the tunnel writes
 * one line per relayed request (bench W6).
 */
const auditLoggers = new WeakMap<Logger, Logger>();

export function audit(logger: Logger, event: AuditEvent, fields: AuditFields = {}): void {
  let auditLogger = auditLoggers.get(logger);
  if (auditLogger === undefined) {
    auditLogger = logger.child({}, { redact: { paths: [...TOP_LEVEL_REDACT_PATHS], censor: '[redacted]' } });
    auditLoggers.set(logger, auditLogger);
  }
  // Fields first: a caller's field can never overwrite `audit` or `event`.
  auditLogger.info({ ...fields, audit: true, event }, event);
}
