// The one rule for the names clients choose (SPEC §3.3): user ids, device ids
// and room names; events published through the admin API (SPEC §4) and
// NODE_ID follow it too. Every check and every message about it comes from here.

const NAME_CHARS = 'A-Za-z0-9_.:@-';

export const NAME_PATTERN = new RegExp(`^[${NAME_CHARS}]{1,128}$`);

/** Any character a name may not hold (to make a name out of other text, e.g. a hostname). */
export const NOT_NAME_CHAR = new RegExp(`[^${NAME_CHARS}]`, 'g');

/** The rule in words, for error messages. */
export const NAME_RULE = `1-128 chars of [${NAME_CHARS}]`;

export function isValidName(value: unknown): value is string {
  return typeof value === 'string' && NAME_PATTERN.test(value);
}

/** The path a tunnel token may serve (TUNNEL-PROTOCOL.md §1): mounted at /call/<path_id>, so no ':' or '@'; UUIDs fit. */
export const PATH_ID_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;

/** The path_id rule in words, for error messages. */
export const PATH_ID_RULE = '1-128 chars of [A-Za-z0-9_.-]';
