// `Authorization: Bearer <token>` (RFC 6750 §2.1), read the same way by app
// connects (SPEC §2) and the admin API (SPEC §4). A header sent on several
// lines arrives joined ("Bearer a, Bearer b"), matches nothing, and counts as
// no token: which of two tokens was meant is not guessed.
const BEARER = /^Bearer\s+(\S+)$/i;

/** The token of an Authorization header value; undefined when there is none or it is not a Bearer token. */
export function bearerToken(authorization: string | undefined): string | undefined {
  return BEARER.exec(authorization ?? '')?.[1];
}
