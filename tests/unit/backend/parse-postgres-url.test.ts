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
    });
  });

  it('fills libpq defaults', () => {
    expect(parsePostgresUrl('postgresql://127.0.0.1')).toEqual({ host: '127.0.0.1', port: 5432, user: 'postgres', password: null, database: 'postgres' });
    expect(parsePostgresUrl('postgres://bob@[::1]/')).toMatchObject({ host: '::1', user: 'bob', database: 'bob' });
  });

  it('rejects other schemes', () => {
    expect(() => parsePostgresUrl('mysql://x@y/z')).toThrow();
  });
});
