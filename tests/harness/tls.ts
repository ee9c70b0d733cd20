import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { asPostgresUser, handToPostgresUser } from '../../src/bench/pg-cluster.js';
import { PgCluster, pgBinDir, runCommand } from './cluster.js';

const run = promisify(execFile);

/** Certificates made with openssl for one test file; `remove()` deletes them. */
export interface TestCertificates {
  readonly dir: string;
  /** The CA that signed the server certificate. */
  readonly caCert: string;
  /** A CA that signed nothing here: verification against it must fail. */
  readonly otherCaCert: string;
  /** Server certificate for DNS name `localhost` only (so 127.0.0.1 fails a host check), and its key. */
  readonly serverCert: string;
  readonly serverKey: string;
  remove(): Promise<void>;
}

async function openssl(args: readonly string[], cwd: string): Promise<void> {
  await run('openssl', [...args], { cwd, timeout: 60_000 });
}

async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=ShardGate test ${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
}

/**
 * A CA, a server certificate it signed (ECDSA P-256 with SHA-256, so SCRAM
 * channel binding hashes with SHA-256) and an unrelated CA, in a temporary
 * folder handed to user postgres, keys mode 0600, so a PostgreSQL server can
 * use them too.
 */
export async function makeTestCertificates(): Promise<TestCertificates> {
  const dir = await mkdtemp(join(tmpdir(), 'shardgate-tls-'));
  await makeCa(dir, 'ca');
  await makeCa(dir, 'other-ca');
  await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost'], dir);
  await writeFile(join(dir, 'server.ext'), 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n');
  await openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-sha256', '-extfile', 'server.ext'], dir);
  await chmod(join(dir, 'server.key'), 0o600);
  for (const file of ['', 'server.key', 'server.crt', 'ca.crt']) await handToPostgresUser(join(dir, file));
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    otherCaCert: join(dir, 'other-ca.crt'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/** A cluster whose own queries (the test's direct checks) go over TLS, unverified. */
export class TlsCluster extends PgCluster {
  override async query<R extends Record<string, unknown> = Record<string, unknown>>(sql: string, params: unknown[] = [], database = 'postgres'): Promise<R[]> {
    const client = new pg.Client({ connectionString: this.url(database), ssl: { rejectUnauthorized: false } });
    await client.connect();
    try {
      return (await client.query<R>(sql, params)).rows;
    } finally {
      await client.end();
    }
  }
}

/**
 * A cluster that accepts TCP clients only over TLS (ssl on with the test
 * server certificate; pg_hba `hostnossl … reject`), as managed PostgreSQL
 * services are configured. Role `scram_tls`, when a test creates it, must
 * authenticate with SCRAM-SHA-256.
 */
export async function startTlsOnlyCluster(certs: TestCertificates, databases: readonly string[] = []): Promise<TlsCluster> {
  const cluster = await TlsCluster.create({
    databases,
    settings: { ssl: 'on', ssl_cert_file: `'${certs.serverCert}'`, ssl_key_file: `'${certs.serverKey}'` },
  });
  const hba = join(cluster.dataDir, 'pg_hba.conf');
  // Role scram_tls logs in with a password (SCRAM, channel binding possible); everyone else is trusted over TLS.
  const lines = ['local all all trust', 'hostnossl all all 127.0.0.1/32 reject', 'hostssl all scram_tls 127.0.0.1/32 scram-sha-256', 'hostssl all all 127.0.0.1/32 trust', ''];
  await writeFile(hba, lines.join('\n'));
  const [cmd, argv] = asPostgresUser(join(pgBinDir(), 'pg_ctl'), ['-D', cluster.dataDir, 'reload']);
  const reload = await runCommand(cmd, argv);
  if (reload.code !== 0) throw new Error(`pg_ctl reload failed: ${reload.stderr}`);
  // The reload is a signal: wait until a plaintext connection is refused, which is its effect.
  for (;;) {
    const client = new pg.Client({ connectionString: cluster.url('postgres') });
    const refused = await client.connect().then(
      () => false,
      () => true,
    );
    await client.end().catch(() => undefined);
    if (refused) return cluster;
    await new Promise((r) => setTimeout(r, 20));
  }
}
