// TLS on the node's listener (PORT): TLS_CERT_FILE and TLS_KEY_FILE, both or
// neither, with TLS_KEY_PASSPHRASE for an encrypted key. The files are read and
// checked here, once at start-up, so that every way they can be wrong is a
// config error naming the variable (exit code 2): uWS itself only says "App
// construction failed", and OpenSSL would ask a terminal for the passphrase of
// an encrypted key given none. uWS reads the files again by name when the
// listener is built (transport/uws-server.ts).
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Env } from './schema';

/** What the listener needs: the files by name (uWS reads them itself) and the key's passphrase. */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  passphrase?: string;
}

type TlsEnv = Pick<Env, 'TLS_CERT_FILE' | 'TLS_KEY_FILE' | 'TLS_KEY_PASSPHRASE'>;

/** The TLS files of a valid configuration; undefined: the listener speaks plain HTTP/WS. */
export function tlsFiles(env: TlsEnv): TlsFiles | undefined {
  if (env.TLS_CERT_FILE === undefined || env.TLS_KEY_FILE === undefined) return undefined;
  const files: TlsFiles = { certFile: env.TLS_CERT_FILE, keyFile: env.TLS_KEY_FILE };
  if (env.TLS_KEY_PASSPHRASE !== undefined) files.passphrase = env.TLS_KEY_PASSPHRASE;
  return files;
}

/** One line per problem, each starting with the variable to fix; empty when TLS is off or its files are good. */
export function tlsProblems(env: TlsEnv): string[] {
  const { TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile, TLS_KEY_PASSPHRASE: passphrase } = env;
  if (certFile === undefined && keyFile === undefined)
    return passphrase === undefined ? [] : ['TLS_KEY_PASSPHRASE: set without TLS_CERT_FILE and TLS_KEY_FILE'];
  if (keyFile === undefined) return ['TLS_KEY_FILE: required with TLS_CERT_FILE (the certificate\'s private key, PEM)'];
  if (certFile === undefined) return ['TLS_CERT_FILE: required with TLS_KEY_FILE (the certificate chain, PEM)'];

  const problems: string[] = [];
  const cert = readCertificate(certFile, problems);
  const key = readPrivateKey(keyFile, passphrase, problems);
  if (cert !== undefined && key !== undefined && !cert.checkPrivateKey(key))
    problems.push(`TLS_KEY_FILE: the key in ${keyFile} does not belong to the certificate in ${certFile}`);
  return problems;
}

function readPem(name: string, path: string, problems: string[]): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch (error) {
    problems.push(`${name}: cannot read ${path} (${errorCode(error)})`);
    return undefined;
  }
}

/** The first certificate of the file (the server's own; intermediates may follow it). */
function readCertificate(path: string, problems: string[]): X509Certificate | undefined {
  const pem = readPem('TLS_CERT_FILE', path, problems);
  if (pem === undefined) return undefined;
  try {
    return new X509Certificate(pem);
  } catch {
    problems.push(`TLS_CERT_FILE: ${path} holds no PEM certificate`);
    return undefined;
  }
}

function readPrivateKey(path: string, passphrase: string | undefined, problems: string[]): KeyObject | undefined {
  const pem = readPem('TLS_KEY_FILE', path, problems);
  if (pem === undefined) return undefined;
  const encrypted = pem.includes('ENCRYPTED');
  if (encrypted && passphrase === undefined) {
    problems.push(`TLS_KEY_PASSPHRASE: required: the key in ${path} is encrypted`);
    return undefined;
  }
  try {
    return createPrivateKey(passphrase === undefined ? { key: pem } : { key: pem, passphrase });
  } catch {
    problems.push(encrypted ? `TLS_KEY_PASSPHRASE: does not decrypt the key in ${path}` : `TLS_KEY_FILE: ${path} holds no PEM private key`);
    return undefined;
  }
}

const errorCode = (error: unknown): string =>
  error instanceof Error && 'code' in error && typeof error.code === 'string' ? error.code : error instanceof Error ? error.message : String(error);
