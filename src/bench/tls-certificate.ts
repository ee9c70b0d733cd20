import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommand } from './pg-cluster.js';

/** A self-signed server certificate for the benchmark's TLS side; `remove()` deletes it. */
export interface BenchCertificate {
  readonly cert: string;
  readonly key: string;
  remove(): Promise<void>;
}

/**
 * Makes a certificate with openssl (ECDSA P-256, SHA-256: what a current CA
 * issues, so the handshake and record costs are the usual ones). Rejects
 * with openssl's output when it fails or is missing.
 */
export async function makeBenchCertificate(): Promise<BenchCertificate> {
  const dir = await mkdtemp(join(tmpdir(), 'shardgate-bench-tls-'));
  const cert = join(dir, 'server.crt');
  const key = join(dir, 'server.key');
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost'];
  const r = await runCommand('openssl', args, { timeoutMs: 60_000 }).catch((err: unknown) => ({ code: -1, stdout: '', stderr: String(err) }));
  if (r.code !== 0) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`openssl could not make a certificate (install openssl): ${r.stderr.trim()}`);
  }
  return { cert, key, remove: () => rm(dir, { recursive: true, force: true }) };
}
