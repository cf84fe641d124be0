// Key material for verifying and signing tokens, built once from the config.
// Every key is a KeyObject: jsonwebtoken rebuilds a key from a string or
// Buffer on every call (~0.9 ms for an HS secret), a KeyObject costs ~20 µs.
// Every key carries the only algorithms it may be used with, chosen from its
// type, never from the token: that is what rejects `alg: none` and an HS token
// "signed" with the public key as its HMAC secret.
import { createPrivateKey, createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Config } from '../config/load';

export type HmacAlgorithm = 'HS256' | 'HS384' | 'HS512';
export type RsaAlgorithm = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512';
export type EcAlgorithm = 'ES256' | 'ES384' | 'ES512';
/** The algorithms jsonwebtoken 9 implements (through jwa). */
export type JwsAlgorithm = HmacAlgorithm | RsaAlgorithm | EcAlgorithm;
export type AsymmetricAlgorithm = RsaAlgorithm | EcAlgorithm | 'EdDSA';

// jsonwebtoken 9 has no EdDSA, so Ed25519/Ed448 keys are a separate kind that
// the verifier and signer handle with node:crypto directly.
export type VerificationKey =
  | { kind: 'jws'; key: KeyObject; algorithms: readonly JwsAlgorithm[] }
  | { kind: 'eddsa'; key: KeyObject };

export type SigningKey = { kind: 'jws'; key: KeyObject; algorithm: JwsAlgorithm } | { kind: 'eddsa'; key: KeyObject };

export const HMAC_ALGORITHMS: readonly HmacAlgorithm[] = ['HS256', 'HS384', 'HS512'];
const RSA_ALGORITHMS: readonly RsaAlgorithm[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
const RSA_PSS_ALGORITHMS: readonly RsaAlgorithm[] = ['PS256', 'PS384', 'PS512'];
// Each ES algorithm is defined for exactly one curve (RFC 7518 §3.4), so an EC
// key allows one algorithm, not three.
const EC_ALGORITHM_BY_CURVE: ReadonlyMap<string, EcAlgorithm> = new Map([
  ['prime256v1', 'ES256'],
  ['secp384r1', 'ES384'],
  ['secp521r1', 'ES512'],
]);

/** Where the verification keys come from: fixed key material, or a JWKS endpoint read by `kid`. */
export type KeySource = { kind: 'static'; key: VerificationKey; description: string } | { kind: 'jwks'; url: string };

/** Reads the configured verification key source; throws an Error naming the variable when it is unusable. */
export function keySourceFromConfig(config: Config): KeySource {
  if (config.JWT_SECRET !== undefined) return { kind: 'static', key: hmacKey(config.JWT_SECRET), description: 'JWT_SECRET (HS256/384/512)' };
  if (config.JWT_PUBLIC_KEY !== undefined) return staticPublicKey(config.JWT_PUBLIC_KEY, 'JWT_PUBLIC_KEY');
  if (config.JWT_PUBLIC_KEY_FILE !== undefined) return staticPublicKey(readPemFile(config.JWT_PUBLIC_KEY_FILE), 'JWT_PUBLIC_KEY_FILE');
  if (config.JWT_JWKS_URL !== undefined) return { kind: 'jwks', url: config.JWT_JWKS_URL };
  // loadConfig refuses a config without a key source; this guards hand-built ones.
  throw new Error('no JWT key configured: set JWT_SECRET, JWT_PUBLIC_KEY, JWT_PUBLIC_KEY_FILE or JWT_JWKS_URL');
}

export function hmacKey(secret: string): VerificationKey {
  return { kind: 'jws', key: createSecretKey(Buffer.from(secret, 'utf8')), algorithms: HMAC_ALGORITHMS };
}

/** A PEM public key (SPKI or PKCS#1) with its algorithms; `variable` names the source in errors. */
export function publicKeyFromPem(pem: string, variable = 'public key'): VerificationKey {
  const text = unescapePem(pem);
  // JWT_PUBLIC_KEY is not treated as a secret (check-config prints it), and
  // Node would quietly derive the public half from a private key.
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text))
    throw new Error(`${variable}: holds a private key; give the public key (the private one goes in JWT_PRIVATE_KEY)`);
  let key: KeyObject;
  try {
    key = createPublicKey({ key: text, format: 'pem' });
  } catch (error) {
    throw new Error(`${variable}: cannot parse a PEM public key (-----BEGIN PUBLIC KEY----- or RSA PUBLIC KEY) from it: ${reasonOf(error)}`, {
      cause: error,
    });
  }
  return verificationKeyFor(key, variable);
}

/** The algorithms a public key may verify, by key type and curve; throws for a type JWT cannot use. */
export function verificationKeyFor(key: KeyObject, variable = 'public key'): VerificationKey {
  const type = key.asymmetricKeyType;
  if (type === 'ed25519' || type === 'ed448') return { kind: 'eddsa', key };
  if (type === 'rsa') return { kind: 'jws', key, algorithms: RSA_ALGORITHMS };
  // An RSA-PSS key is restricted to PSS padding by its own parameters.
  if (type === 'rsa-pss') return { kind: 'jws', key, algorithms: RSA_PSS_ALGORITHMS };
  if (type === 'ec') return { kind: 'jws', key, algorithms: [ecAlgorithm(key, variable)] };
  throw new Error(`${variable}: unsupported key type ${type ?? key.type} (use RSA, EC P-256/P-384/P-521, Ed25519 or Ed448)`);
}

/**
 * The node's signing key: JWT_PRIVATE_KEY (PEM) when set, else JWT_SECRET
 * (HS256); undefined when neither is set. Throws when the private key is
 * unusable or cannot produce tokens that this node's verification key accepts.
 */
export function signingKeyFromConfig(config: Config): SigningKey | undefined {
  if (config.JWT_PRIVATE_KEY === undefined) {
    return config.JWT_SECRET === undefined ? undefined : { kind: 'jws', key: createSecretKey(Buffer.from(config.JWT_SECRET, 'utf8')), algorithm: 'HS256' };
  }
  if (config.JWT_SECRET !== undefined)
    throw new Error('JWT_PRIVATE_KEY: cannot be used with JWT_SECRET (tokens it signs would not verify); set JWT_PUBLIC_KEY instead of JWT_SECRET');
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: unescapePem(config.JWT_PRIVATE_KEY), format: 'pem' });
  } catch (error) {
    throw new Error(`JWT_PRIVATE_KEY: cannot parse an unencrypted PEM private key from it: ${reasonOf(error)}`, { cause: error });
  }
  const signing = signingKeyFor(key);
  const source = config.JWT_PUBLIC_KEY ?? (config.JWT_PUBLIC_KEY_FILE === undefined ? undefined : readPemFile(config.JWT_PUBLIC_KEY_FILE));
  if (source !== undefined) {
    const verifying = publicKeyFromPem(source, config.JWT_PUBLIC_KEY === undefined ? 'JWT_PUBLIC_KEY_FILE' : 'JWT_PUBLIC_KEY');
    if (!samePublicKey(createPublicKey(key), verifying.key))
      throw new Error('JWT_PRIVATE_KEY: does not match the configured public key; tokens it signs would not verify');
  }
  return signing;
}

function signingKeyFor(key: KeyObject): SigningKey {
  const type = key.asymmetricKeyType;
  if (type === 'ed25519' || type === 'ed448') return { kind: 'eddsa', key };
  if (type === 'rsa') return { kind: 'jws', key, algorithm: 'RS256' };
  if (type === 'rsa-pss') return { kind: 'jws', key, algorithm: 'PS256' };
  if (type === 'ec') return { kind: 'jws', key, algorithm: ecAlgorithm(key, 'JWT_PRIVATE_KEY') };
  throw new Error(`JWT_PRIVATE_KEY: unsupported key type ${type ?? key.type} (use RSA, EC P-256/P-384/P-521, Ed25519 or Ed448)`);
}

function ecAlgorithm(key: KeyObject, variable: string): EcAlgorithm {
  const curve = key.asymmetricKeyDetails?.namedCurve ?? '?';
  const algorithm = EC_ALGORITHM_BY_CURVE.get(curve);
  if (algorithm === undefined) throw new Error(`${variable}: EC curve ${curve} has no JWT algorithm (use P-256, P-384 or P-521)`);
  return algorithm;
}

function staticPublicKey(pem: string, variable: string): KeySource {
  const key = publicKeyFromPem(pem, variable);
  const algorithms = key.kind === 'eddsa' ? 'EdDSA' : key.algorithms.join('/');
  return { kind: 'static', key, description: `${variable} (${algorithms})` };
}

function readPemFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const reason = error instanceof Error && 'code' in error && typeof error.code === 'string' ? error.code : reasonOf(error);
    throw new Error(`JWT_PUBLIC_KEY_FILE: cannot read ${path} (${reason})`, { cause: error });
  }
}

// Environment variables and secret stores often carry a PEM on one line with
// literal "\n" escapes instead of newlines.
function unescapePem(pem: string): string {
  return pem.replace(/\\r\\n|\\n/g, '\n').trim();
}

function samePublicKey(a: KeyObject, b: KeyObject): boolean {
  return a.export({ type: 'spki', format: 'der' }).equals(b.export({ type: 'spki', format: 'der' }));
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
