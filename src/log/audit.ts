// Security events as audit records: one `info` line each with `audit: true`
// and a stable `event` name, so a log pipeline can route them by field.
// The event names are part of the operations contract (README "Audit log").
import type { Logger } from './logger';

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

export function audit(logger: Logger, event: AuditEvent, fields: Record<string, unknown> = {}): void {
  // Fields first: a caller's field can never overwrite `audit` or `event`.
  logger.info({ ...fields, audit: true, event }, event);
}
