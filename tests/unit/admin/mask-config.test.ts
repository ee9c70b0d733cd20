import { describe, expect, it } from 'vitest';
import { maskConfig, maskSecretsInText } from '../../../src/admin/mask-config.js';

describe('maskConfig', () => {
  it('masks passwords, tokens and passwords inside URLs and conninfo strings, and turns Maps into objects', () => {
    const config = {
      listen: { host: '127.0.0.1', port: 6432 },
      adminToken: 'super-secret-token-123',
      auth: { users: [{ name: 'app', password: 'app-pw' }], trust: false },
      shards: [
        { kind: 'postgres', name: 's0', url: 'postgres://postgres:s3cret@10.0.0.1:5432/app' },
        { kind: 'postgres', name: 's1', url: 'postgresql://u@h/app?password=qs-secret&sslmode=require' },
        { kind: 'postgres', name: 's2', url: "host=h dbname=app password='a b' user=u" },
        { kind: 'embedded', name: 's3', dir: '/data/s3' },
      ],
      tables: new Map([['account', { kind: 'hash', key: 'id' }]]),
    };
    const json = JSON.stringify(maskConfig(config));
    for (const secret of ['super-secret-token-123', 'app-pw', 's3cret', 'qs-secret', "'a b'"]) expect(json).not.toContain(secret);
    const masked = JSON.parse(json) as typeof config & { tables: Record<string, unknown> };
    expect(masked.adminToken).toBe('***');
    expect(masked.auth.users[0]).toEqual({ name: 'app', password: '***' });
    expect(masked.shards[0]!.url).toBe('postgres://postgres:***@10.0.0.1:5432/app');
    expect(masked.shards[1]!.url).toContain('sslmode=require');
    expect(masked.shards[2]!.url).toBe('host=h dbname=app password=*** user=u');
    expect(masked.shards[3]).toEqual({ kind: 'embedded', name: 's3', dir: '/data/s3' });
    expect(masked.tables).toEqual({ account: { kind: 'hash', key: 'id' } });
    expect(masked.listen).toEqual({ host: '127.0.0.1', port: 6432 });
  });

  it('keeps an absent token visible and survives cycles', () => {
    const cyclic: Record<string, unknown> = { adminToken: null, name: 'x' };
    cyclic.self = cyclic;
    expect(maskConfig(cyclic)).toEqual({ adminToken: null, name: 'x' });
  });

  it('masks userinfo passwords in text that is not a parseable URL', () => {
    expect(maskSecretsInText('see postgres://u:pw@host:5432/db for details')).toBe('see postgres://u:***@host:5432/db for details');
  });
});
