import { connect } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeStartup } from '../../../src/protocol/index.js';
import { PgCluster, runCommand } from '../../harness/cluster.js';
import { startProxy, type RunningProxy } from '../../harness/proxy.js';
import { makeTestCertificates, type TestCertificates } from '../../harness/tls.js';

/**
 * Clients reaching `shardgate serve` over TLS: libpq (psql) in every sslmode
 * that matters, SCRAM channel binding, a proxy that refuses plaintext, and the
 * plaintext bytes an attacker could inject around the TLS request.
 */
describe('TLS from clients', () => {
  let certs: TestCertificates;
  let shard: PgCluster;
  let optional: RunningProxy;
  let required: RunningProxy;

  const config = (tls: Record<string, unknown>): Record<string, unknown> => ({
    database: 'app',
    auth: { users: [{ name: 'app', password: 'app' }] },
    shards: { s0: shard.url('app') },
    tls: { cert: certs.serverCert, key: certs.serverKey, ...tls },
  });

  beforeAll(async () => {
    certs = await makeTestCertificates();
    shard = await PgCluster.create({ databases: ['app'] });
    [optional, required] = await Promise.all([startProxy(config({})), startProxy(config({ required: true }))]);
  });

  afterAll(async () => {
    await Promise.all([optional?.stop(), required?.stop()]);
    await shard?.destroy();
    await certs?.remove();
  });

  /** psql with a libpq connection string; `\conninfo` says whether the session is encrypted. */
  function psql(port: number, options: string, sql: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return runCommand('psql', ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql, `host=localhost port=${port} user=app dbname=app ${options}`], {
      env: { PGPASSWORD: 'app', PGCONNECT_TIMEOUT: '10' },
      timeoutMs: 30_000,
    });
  }

  it('serves psql with sslmode=verify-full against the configured certificate', async () => {
    const r = await psql(optional.port, `sslmode=verify-full sslrootcert=${certs.caCert}`, '\\conninfo');
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/SSL connection \(protocol: TLSv1\.[23]/);
    const q = await psql(optional.port, `sslmode=verify-full sslrootcert=${certs.caCert}`, 'SELECT 6 * 7');
    expect(q.stdout.trim()).toBe('42');
  });

  it('binds SCRAM to the TLS session when the client asks for channel binding', async () => {
    const r = await psql(optional.port, `sslmode=require channel_binding=require`, 'SELECT 1');
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('1');
    // Without TLS there is nothing to bind to: libpq refuses rather than authenticate unbound.
    const plain = await psql(optional.port, `sslmode=disable channel_binding=require`, 'SELECT 1');
    expect(plain.code).not.toBe(0);
    expect(plain.stderr).toMatch(/channel binding/);
  });

  it('fails verify-full when the client trusts another CA', async () => {
    const r = await psql(optional.port, `sslmode=verify-full sslrootcert=${certs.otherCaCert}`, 'SELECT 1');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/certificate verify failed/);
  });

  it('still serves plaintext clients unless told to refuse them', async () => {
    const r = await psql(optional.port, 'sslmode=disable', '\\conninfo');
    expect(r.stdout).not.toMatch(/SSL connection/);
    expect(r.stdout).toMatch(/You are connected/);
  });

  it('refuses plaintext clients with 28000 when tls.required, and serves TLS ones', async () => {
    const client = new pg.Client({ host: '127.0.0.1', port: required.port, user: 'app', password: 'app', database: 'app', ssl: false });
    const err = await client.connect().then(
      () => null,
      (e: unknown) => e as { code?: string; message: string },
    );
    await client.end().catch(() => undefined);
    expect(err?.code).toBe('28000');
    expect(err?.message).toMatch(/accepts only encrypted connections/);
    const ok = await psql(required.port, 'sslmode=require', 'SELECT 1');
    expect(ok.stdout.trim()).toBe('1');
    // libpq's default (prefer) tries TLS first, so it gets in as well.
    const preferred = await psql(required.port, '', '\\conninfo');
    expect(preferred.stdout).toMatch(/SSL connection/);
  });

  it('refuses plaintext sent together with the SSLRequest (08P01), before any handshake', async () => {
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: optional.port });
      const chunks: Buffer[] = [];
      socket.on('error', reject);
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('close', () => resolve(Buffer.concat(chunks)));
      const startup = encodeStartup({ type: 'StartupMessage', major: 3, minor: 0, parameters: { user: 'app', database: 'app' } });
      socket.write(Buffer.concat([encodeStartup({ type: 'SSLRequest' }), startup]));
    });
    expect(reply[0]).toBe('E'.charCodeAt(0));
    expect(reply.toString('latin1')).toContain('C08P01');
    expect(reply.toString('latin1')).toContain('unencrypted data after SSL request');
  });

  it('answers GSSENCRequest with N and goes on to TLS', async () => {
    const first = await new Promise<string>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: optional.port });
      socket.on('error', reject);
      let seen = '';
      socket.on('data', (c: Buffer) => {
        seen += c.toString('latin1');
        if (seen === 'N') socket.write(encodeStartup({ type: 'SSLRequest' }));
        if (seen === 'NS') {
          socket.destroy();
          resolve(seen);
        }
      });
      socket.write(encodeStartup({ type: 'GSSENCRequest' }));
    });
    expect(first).toBe('NS');
  });

  it('refuses to start with a certificate it cannot read, naming the key', async () => {
    const err = await startProxy({ ...config({}), tls: { cert: `${certs.dir}/missing.crt`, key: certs.serverKey } }, { timeoutMs: 30_000 }).then(
      (p) => p.stop().then(() => null),
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(/tls\.cert: cannot read .*missing\.crt/);
  });
});
