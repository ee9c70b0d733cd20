import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectPostgres, parsePostgresUrl } from '../../../src/backend/connect-postgres.js';
import type { BackendConnection } from '../../../src/backend/backend-connection.js';
import { shardName } from '../../../src/config/names.js';
import { PgError } from '../../../src/errors/pg-error.js';
import { PgCluster } from '../../harness/cluster.js';
import { makeTestCertificates, startTlsOnlyCluster, type TestCertificates, type TlsCluster } from '../../harness/tls.js';

const s0 = shardName('s0');

/**
 * Shard connections by sslmode against a server that refuses plaintext TCP
 * (hostnossl reject), and one without TLS at all.
 */
describe('TLS to shards', () => {
  let certs: TestCertificates;
  let tlsOnly: TlsCluster;
  let plainOnly: PgCluster;

  beforeAll(async () => {
    certs = await makeTestCertificates();
    [tlsOnly, plainOnly] = await Promise.all([startTlsOnlyCluster(certs, ['app']), PgCluster.create({ databases: ['app'] })]);
  });

  afterAll(async () => {
    await Promise.all([tlsOnly?.destroy(), plainOnly?.destroy()]);
    await certs?.remove();
  });

  const url = (host: string, cluster: PgCluster, query: string): string => `postgres://postgres@${host}:${cluster.port}/app${query === '' ? '' : `?${query}`}`;

  /** Whether the server sees this connection as TLS, from its own pg_stat_ssl. */
  async function encrypted(conn: BackendConnection): Promise<boolean> {
    const rows = await conn.rows('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    return rows[0]![0] === 't';
  }

  async function failure(target: string): Promise<PgError> {
    try {
      const conn = await connectPostgres(s0, parsePostgresUrl(target));
      await conn.close();
    } catch (err) {
      if (err instanceof PgError) return err;
      throw err;
    }
    throw new Error(`connecting to ${target} succeeded`);
  }

  it.each([
    ['default (prefer)', ''],
    ['require', 'sslmode=require'],
  ])('connects over TLS with sslmode %s and serves queries', async (_, query) => {
    const conn = await connectPostgres(s0, parsePostgresUrl(url('127.0.0.1', tlsOnly, query)));
    try {
      expect(await encrypted(conn)).toBe(true);
      expect(await conn.rows('SELECT 40 + 2')).toEqual([['42']]);
    } finally {
      await conn.close();
    }
  });

  it('verifies the chain and the host name with verify-full', async () => {
    const conn = await connectPostgres(s0, parsePostgresUrl(url('localhost', tlsOnly, `sslmode=verify-full&sslrootcert=${certs.caCert}`)));
    try {
      expect(await encrypted(conn)).toBe(true);
    } finally {
      await conn.close();
    }
    // The certificate names localhost only: the chain is right, the host is not.
    const wrongHost = await failure(url('127.0.0.1', tlsOnly, `sslmode=verify-full&sslrootcert=${certs.caCert}`));
    expect(wrongHost.code).toBe('08006');
    expect(wrongHost.message).toMatch(/TLS with the shard at 127\.0\.0\.1:\d+ failed: .*(IP|altnames)/);
    const byIp = await connectPostgres(s0, parsePostgresUrl(url('127.0.0.1', tlsOnly, `sslmode=verify-ca&sslrootcert=${certs.caCert}`)));
    await byIp.close();
  });

  it.each([
    ['verify-full', `sslmode=verify-full`],
    ['verify-ca', `sslmode=verify-ca`],
    ['require with a root certificate', `sslmode=require`],
  ])('refuses a certificate from another CA under %s', async (_, mode) => {
    const err = await failure(url('localhost', tlsOnly, `${mode}&sslrootcert=${certs.otherCaCert}`));
    expect(err.code).toBe('08006');
    expect(err.message).toMatch(/TLS with the shard at localhost:\d+ failed/);
  });

  it('is refused by a TLS-only server with sslmode=disable, with the server\'s reason', async () => {
    const err = await failure(url('127.0.0.1', tlsOnly, 'sslmode=disable'));
    expect(err.code).toBe('08006');
    expect(err.message).toMatch(/no encryption/);
    expect(err.fields.detail).toBe('SQLSTATE 28000');
  });

  it('falls back to plaintext under prefer, and fails under require, on a server without TLS', async () => {
    const conn = await connectPostgres(s0, parsePostgresUrl(url('127.0.0.1', plainOnly, '')));
    try {
      expect(await encrypted(conn)).toBe(false);
    } finally {
      await conn.close();
    }
    const err = await failure(url('127.0.0.1', plainOnly, 'sslmode=require'));
    expect(err.code).toBe('08006');
    expect(err.message).toMatch(/does not support TLS, and its sslmode requires it/);
  });

  it('binds SCRAM to the TLS session (SCRAM-SHA-256-PLUS) when the shard offers it', async () => {
    await tlsOnly.query("SET password_encryption = 'scram-sha-256'; CREATE ROLE scram_tls LOGIN PASSWORD 'pl us'");
    const target = (query: string): string => `postgres://scram_tls:pl%20us@localhost:${tlsOnly.port}/app?${query}`;
    // The shard checks the binding data against its own certificate: a wrong hash would fail the login.
    const bound = await connectPostgres(s0, parsePostgresUrl(target(`sslmode=verify-full&sslrootcert=${certs.caCert}&channel_binding=require`)));
    try {
      expect(await encrypted(bound)).toBe(true);
    } finally {
      await bound.close();
    }
    const wrong = await failure(`postgres://scram_tls:wrong@localhost:${tlsOnly.port}/app?sslmode=require&channel_binding=require`);
    expect(wrong.fields.detail).toBe('SQLSTATE 28P01');
    // A trusted login never runs SCRAM, so there is nothing bound: refused under require.
    const trusted = await failure(url('localhost', tlsOnly, 'sslmode=require&channel_binding=require'));
    expect(trusted.message).toMatch(/authenticated without channel binding/);
  });

  /**
   * A TCP relay in front of `cluster` that records the first four bytes after
   * the length of each connection's first message: the request code
   * (80877103 SSLRequest, 80877102 CancelRequest, 196608 a plaintext startup).
   */
  async function recordingRelay(cluster: PgCluster): Promise<{ port: number; codes: number[]; close(): Promise<void> }> {
    const codes: number[] = [];
    const sockets = new Set<Socket>();
    const server: Server = createServer((client) => {
      const upstream = connect({ host: '127.0.0.1', port: cluster.port });
      for (const sock of [client, upstream]) {
        sockets.add(sock);
        sock.on('error', () => undefined);
        sock.on('close', () => sockets.delete(sock));
      }
      let head = Buffer.alloc(0);
      const onHead = (d: Buffer): void => {
        head = Buffer.concat([head, d]);
        if (head.length < 8) return;
        client.off('data', onHead);
        codes.push(head.readInt32BE(4));
        upstream.write(head);
        client.pipe(upstream);
      };
      client.on('data', onHead);
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return {
      port: (server.address() as AddressInfo).port,
      codes,
      close: async () => {
        for (const sock of sockets) sock.destroy();
        await new Promise<void>((r) => server.close(() => r()));
      },
    };
  }

  it('sends a cancel request over TLS for a session on TLS, and it cancels the statement', async () => {
    const relay = await recordingRelay(tlsOnly);
    const conn = await connectPostgres(s0, parsePostgresUrl(`postgres://postgres@127.0.0.1:${relay.port}/app?sslmode=require`));
    try {
      expect(await encrypted(conn)).toBe(true);
      const sleeping = conn.rows('SELECT pg_sleep(60)').then(
        () => null,
        (err: unknown) => err,
      );
      // The statement is running once the server shows it.
      const running = async (): Promise<boolean> =>
        (await tlsOnly.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'", [], 'app'))[0]!.n === '1';
      while (!(await running())) await new Promise((r) => setTimeout(r, 20));
      await conn.cancel();
      const err = await sleeping;
      expect(err).toBeInstanceOf(PgError);
      expect((err as PgError).code).toBe('57014');
      // Two connections reached the relay, the session and the cancel; both began with SSLRequest.
      expect(relay.codes).toEqual([80877103, 80877103]);
    } finally {
      await conn.close();
      await relay.close();
    }
  });

  it('refuses unusable sslmode settings when the URL is read', () => {
    expect(() => parsePostgresUrl(url('localhost', tlsOnly, 'sslmode=allow'))).toThrow(/sslmode=allow is not supported/);
    expect(() => parsePostgresUrl(url('localhost', tlsOnly, 'sslmode=verify-full'))).toThrow(/needs sslrootcert/);
    expect(() => parsePostgresUrl(url('localhost', tlsOnly, 'sslmode=bogus'))).toThrow(/is not one of/);
    expect(() => parsePostgresUrl(url('localhost', tlsOnly, 'sslmode=disable&channel_binding=require'))).toThrow(/needs TLS/);
  });
});
