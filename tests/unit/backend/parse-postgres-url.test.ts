import { describe, expect, it } from 'vitest';
import { parsePostgresUrl } from '../../../src/backend/connect-postgres.js';

describe('parsePostgresUrl', () => {
  it('reads every part, decoding percent escapes', () => {
    expect(parsePostgresUrl('postgres://app%40x:p%3Ass%20w@db.local:55432/my%20db?sslmode=disable')).toEqual({
      host: 'db.local',
      port: 55432,
      user: 'app@x',
      password: 'p:ss w',
      database: 'my db',
      tls: null,
    });
  });

  it('fills libpq defaults', () => {
    expect(parsePostgresUrl('postgresql://127.0.0.1')).toEqual({
      host: '127.0.0.1',
      port: 5432,
      user: 'postgres',
      password: null,
      database: 'postgres',
      // sslmode=prefer: TLS when offered, unverified, plaintext otherwise.
      tls: { required: false, verifyChain: false, verifyHost: false, ca: undefined, cert: undefined, key: undefined, servername: '127.0.0.1', channelBinding: 'prefer' },
    });
    expect(parsePostgresUrl('postgres://bob@[::1]/')).toMatchObject({ host: '::1', user: 'bob', database: 'bob' });
  });

  it('reads sslmode and its certificate files', () => {
    const ca = new URL(import.meta.url).pathname; // any readable file stands in for a CA here
    expect(parsePostgresUrl(`postgres://db.example.com/app?sslmode=verify-full&sslrootcert=${ca}`).tls).toMatchObject({ required: true, verifyChain: true, verifyHost: true, servername: 'db.example.com' });
    expect(parsePostgresUrl(`postgres://db/app?sslmode=verify-ca&sslrootcert=${ca}`).tls).toMatchObject({ verifyChain: true, verifyHost: false });
    expect(parsePostgresUrl(`postgres://db/app?sslmode=require&sslrootcert=${ca}`).tls).toMatchObject({ verifyChain: true, verifyHost: false });
    expect(parsePostgresUrl('postgres://db/app?sslmode=require').tls).toMatchObject({ required: true, verifyChain: false });
    expect(parsePostgresUrl('postgres://db/app?sslmode=verify-full&sslrootcert=system').tls).toMatchObject({ verifyHost: true, ca: undefined });
    expect(() => parsePostgresUrl('postgres://db/app?sslmode=require&sslcert=/x')).toThrow(/sslcert and sslkey go together/);
    expect(() => parsePostgresUrl('postgres://db/app?sslmode=verify-ca&sslrootcert=/does/not/exist')).toThrow(/ENOENT/);
  });

  it('rejects other schemes', () => {
    expect(() => parsePostgresUrl('mysql://x@y/z')).toThrow();
  });
});
