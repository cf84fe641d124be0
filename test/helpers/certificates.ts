// A self-signed certificate for 127.0.0.1 and localhost, made by the openssl
// CLI (Debian's) into `dir`, for tests of the TLS listener.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestCertificate {
  cert: string;
  key: string;
}

export async function makeTestCertificate(dir: string): Promise<TestCertificate> {
  const at = (name: string) => path.join(dir, name);
  // P-256: key generation takes milliseconds where RSA takes a noticeable fraction of a second.
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', at('key.pem'), '-out', at('cert.pem'),
  ]);
  return { cert: at('cert.pem'), key: at('key.pem') };
}
