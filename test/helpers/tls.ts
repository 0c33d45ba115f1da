/** A throwaway self-signed certificate for tests (generated per run; test-only, never a real key). */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function makeTestCertificate(cn = 'localhost'): { cert: string; key: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'gh-tls-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${cn}`, '-addext', `subjectAltName=DNS:${cn},IP:127.0.0.1`, '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key, dir };
}
