import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, defaultConfig, isLoopbackHost, loadConfig, parseConfig } from '../../../src/config/load.js';

const shards = { s0: 'postgres://postgres@127.0.0.1:55432/app', s1: 'postgres://postgres@127.0.0.1:55433/app' };

/** The issues a configuration is refused with, as `path` strings; fails when it is accepted. */
function pathsOf(raw: unknown): string[] {
  try {
    parseConfig(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues.map((i) => i.path);
  }
  throw new Error('configuration was accepted');
}

function issueAt(raw: unknown, path: string): string {
  try {
    parseConfig(raw);
  } catch (err) {
    const issue = (err as ConfigError).issues.find((i) => i.path === path);
    if (!issue) throw new Error(`no issue at ${path}: ${(err as Error).message}`);
    return issue.message;
  }
  throw new Error('configuration was accepted');
}

describe('parseConfig: a valid configuration', () => {
  it('maps the CONFIG.md example to the validated shape', () => {
    const cfg = parseConfig({
      listen: '127.0.0.1:6432',
      admin: '127.0.0.1:9187',
      database: 'app',
      auth: { users: [{ name: 'app', password: 'app' }] },
      coordinatorId: 'gw1',
      shards: { ...shards, s2: { embedded: './data/s2' } },
      defaultShard: 's1',
      pool: { maxPerShard: 20 },
      transactions: { prepareTimeoutMs: 5000, recoveryIntervalMs: 5000 },
      tables: {
        pgbench_accounts: { key: 'aid' },
        orders: { key: 'user_id', algorithm: 'mod' },
        events: { key: 'created_at', algorithm: 'range', ranges: [{ below: '2026-01-01', shard: 's0' }, { shard: 's1' }] },
        countries: { broadcast: true },
      },
    }, { baseDir: '/etc/shardgate' });
    expect(cfg.listen).toEqual({ host: '127.0.0.1', port: 6432 });
    expect(cfg.admin).toEqual({ host: '127.0.0.1', port: 9187 });
    expect(cfg.shards).toEqual([
      { kind: 'postgres', name: 's0', url: shards.s0 },
      { kind: 'postgres', name: 's1', url: shards.s1 },
      { kind: 'embedded', name: 's2', dir: '/etc/shardgate/data/s2' },
    ]);
    expect(cfg.defaultShard).toBe('s1');
    expect(cfg.pool).toEqual({ maxPerShard: 20, acquireTimeoutMs: 10_000, maxClients: 10_000 });
    expect([...cfg.tables.entries()]).toEqual([
      ['pgbench_accounts', { kind: 'hash', key: 'aid' }],
      ['orders', { kind: 'mod', key: 'user_id' }],
      ['events', { kind: 'range', key: 'created_at', ranges: [{ below: '2026-01-01', shard: 's0' }, { shard: 's1' }] }],
      ['countries', { kind: 'broadcast' }],
    ]);
  });

  it('fills defaults: admin null, first shard as default shard, no users', () => {
    const cfg = parseConfig({ shards });
    expect(cfg.admin).toBeNull();
    expect(cfg.adminToken).toBeNull();
    expect(cfg.defaultShard).toBe('s0');
    expect(cfg.listen).toEqual({ host: '127.0.0.1', port: 6432 });
    expect(cfg.database).toBe('app');
    expect(cfg.coordinatorId).toBe('gw1');
    expect(cfg.auth).toEqual({ users: [], trust: false });
    expect(cfg.transactions).toEqual({ prepareTimeoutMs: 5000, recoveryIntervalMs: 5000 });
    expect(cfg.tables.size).toBe(0);
  });

  it('keeps shards in listed order', () => {
    const cfg = parseConfig({ shards: { b: shards.s0, a: shards.s1, c: { embedded: '/x/c' } } });
    expect(cfg.shards.map((s) => s.name)).toEqual(['b', 'a', 'c']);
  });

  it('parses IPv6 listen addresses and allows trust on loopback', () => {
    const cfg = parseConfig({ listen: '[::1]:7000', auth: { trust: true }, shards });
    expect(cfg.listen).toEqual({ host: '::1', port: 7000 });
    expect(cfg.auth.trust).toBe(true);
    expect(parseConfig({ listen: 'localhost:7000', auth: { trust: true }, shards }).auth.trust).toBe(true);
    expect(parseConfig({ listen: '127.0.0.2:7000', auth: { trust: true }, shards }).auth.trust).toBe(true);
  });

  it('recognises loopback hosts only', () => {
    expect(['127.0.0.1', '127.1.2.3', '::1', 'localhost', 'LOCALHOST'].every(isLoopbackHost)).toBe(true);
    expect(['0.0.0.0', '10.0.0.1', '::', 'example.com', '128.0.0.1'].some(isLoopbackHost)).toBe(false);
  });
});

describe('parseConfig: every error names its key path', () => {
  it('refuses a document that is not a mapping', () => {
    expect(pathsOf(null)).toEqual(['(document)']);
    expect(pathsOf([1, 2])).toEqual(['(document)']);
  });

  it('refuses unknown keys, at the top and nested', () => {
    expect(pathsOf({ shards, bogus: 1 })).toEqual(['bogus']);
    expect(pathsOf({ shards, pool: { maxPerShard: 5, size: 3 } })).toEqual(['pool.size']);
    expect(issueAt({ shards, bogus: 1 }, 'bogus')).toBe('unknown key');
  });

  it('refuses a missing or empty shards mapping', () => {
    expect(pathsOf({})).toEqual(['shards']);
    expect(issueAt({}, 'shards')).toBe('required');
    expect(pathsOf({ shards: {} })).toEqual(['shards']);
  });

  it('refuses malformed shards', () => {
    expect(pathsOf({ shards: { s0: 'mysql://x/app' } })).toEqual(['shards.s0']);
    expect(pathsOf({ shards: { s0: { embedded: '' } } })).toEqual(['shards.s0.embedded']);
    expect(pathsOf({ shards: { s0: { embedded: '/a', extra: 1 } } })).toEqual(['shards.s0.extra']);
    expect(pathsOf({ shards: { s0: 42 } })).toEqual(['shards.s0']);
    expect(pathsOf({ shards: { 'bad-name': shards.s0 } })).toEqual(['shards["bad-name"]']);
    expect(pathsOf({ shards: { '7': shards.s0 } })).toEqual(['shards["7"]']);
    expect(pathsOf({ shards: { s0: 'postgres://' } })).toEqual(['shards.s0']);
  });

  it('refuses two shards on one database or folder', () => {
    expect(pathsOf({ shards: { s0: shards.s0, s1: shards.s0 } })).toEqual(['shards.s1']);
    expect(pathsOf({ shards: { s0: { embedded: '/d/x' }, s1: { embedded: '/d/../d/x' } } })).toEqual(['shards.s1.embedded']);
  });

  it('refuses a default shard that is not a shard', () => {
    expect(pathsOf({ shards, defaultShard: 's9' })).toEqual(['defaultShard']);
    expect(issueAt({ shards, defaultShard: 's9' }, 'defaultShard')).toContain('s9');
  });

  it('refuses bad listen and admin addresses', () => {
    expect(pathsOf({ shards, listen: 'localhost' })).toEqual(['listen']);
    expect(pathsOf({ shards, listen: 6432 })).toEqual(['listen']);
    expect(pathsOf({ shards, listen: '127.0.0.1:70000' })).toEqual(['listen']);
    expect(pathsOf({ shards, admin: 'nowhere' })).toEqual(['admin']);
  });

  it('refuses trust unless listening on loopback', () => {
    expect(pathsOf({ shards, listen: '0.0.0.0:6432', auth: { trust: true } })).toEqual(['auth.trust']);
    expect(pathsOf({ shards, listen: '10.1.2.3:6432', auth: { trust: true, users: [] } })).toEqual(['auth.trust']);
  });

  it('refuses duplicate and incomplete users', () => {
    const users = [{ name: 'app', password: 'a' }, { name: 'app', password: 'b' }];
    expect(pathsOf({ shards, auth: { users } })).toEqual(['auth.users[1].name']);
    expect(pathsOf({ shards, auth: { users: [{ name: 'app' }] } })).toEqual(['auth.users[0].password']);
    expect(pathsOf({ shards, auth: { users: [{ name: '', password: 'x' }] } })).toEqual(['auth.users[0].name']);
  });

  it('refuses an admin address reachable from other machines without a token', () => {
    expect(pathsOf({ shards, admin: '0.0.0.0:9187' })).toEqual(['adminToken']);
    expect(parseConfig({ shards, admin: '0.0.0.0:9187', adminToken: 'x'.repeat(16) }).adminToken).toBe('x'.repeat(16));
    expect(pathsOf({ shards, adminToken: 'short' })).toEqual(['adminToken']);
  });

  it('refuses bad numbers in pool and transactions', () => {
    expect(pathsOf({ shards, pool: { maxPerShard: 0 } })).toEqual(['pool.maxPerShard']);
    expect(pathsOf({ shards, pool: { maxPerShard: 2.5 } })).toEqual(['pool.maxPerShard']);
    expect(pathsOf({ shards, transactions: { prepareTimeoutMs: '5s' } })).toEqual(['transactions.prepareTimeoutMs']);
    expect(pathsOf({ shards, coordinatorId: 'gw_1' })).toEqual(['coordinatorId']);
  });

  it('fills the saga defaults and refuses a bad saga section', () => {
    expect(parseConfig({ shards }).saga).toBeNull();
    expect(parseConfig({ shards, saga: { database: 'postgres://h/app' } }).saga).toEqual({ database: 'postgres://h/app', schema: 'shardgate_saga', retentionMs: 604_800_000, cleanupBatch: 1000, classes: {} });
    expect(pathsOf({ shards, saga: {} })).toEqual(['saga.database']);
    expect(pathsOf({ shards, saga: { database: 'mysql://h/app' } })).toEqual(['saga.database']);
    expect(pathsOf({ shards, saga: { database: 'postgres://h/app', retentionMs: -1, cleanupBatch: 0 } })).toEqual(['saga.retentionMs', 'saga.cleanupBatch']);
    expect(pathsOf({ shards, saga: { database: 'postgres://h/app', retention: 5 } })).toEqual(['saga.retention']);
  });

  it('reads the cdc section (sizes with units, the spill folder made absolute) and refuses bad keys by their path', () => {
    expect(parseConfig({ shards }).cdc).toBeNull();
    expect(parseConfig({ shards, cdc: { memoryLimit: '16MiB', spillDir: 'spill', maxWaitingParts: 500 } }, { baseDir: '/etc/sg' }).cdc).toEqual({ memoryLimit: 16 * 1024 * 1024, spillDir: '/etc/sg/spill', maxWaitingParts: 500 });
    expect(parseConfig({ shards, cdc: { memoryLimit: 1048576 } }).cdc).toEqual({ memoryLimit: 1048576, spillDir: null, maxWaitingParts: null });
    expect(pathsOf({ shards, cdc: { memoryLimit: 'lots', spillDir: '', maxWaitingParts: 0 } })).toEqual(['cdc.memoryLimit', 'cdc.spillDir', 'cdc.maxWaitingParts']);
    expect(pathsOf({ shards, cdc: { memoryLimit: 0.5 } })).toEqual(['cdc.memoryLimit']);
    expect(pathsOf({ shards, cdc: { memory: '1MiB' } })).toEqual(['cdc.memory']);
    expect(issueAt({ shards, cdc: { memoryLimit: '12 parsecs' } }, 'cdc.memoryLimit')).toContain('expected a size: give bytes, or a number with kB');
  });

  it('reads the mode settings of transaction classes and refuses unknown modes and percentages outside 0–100', () => {
    const saga = (classes: unknown): unknown => ({ shards, saga: { database: 'postgres://h/app', classes } });
    const payment = { mode: 'saga', rollout: { mode: 'tcc', percent: 12.5 } };
    expect((parseConfig(saga({ payment })) as { saga: { classes: unknown } }).saga.classes).toEqual({ payment });
    expect(pathsOf(saga({ payment: { mode: 'xa' } }))).toEqual(['saga.classes.payment.mode']);
    expect(issueAt(saga({ payment: { mode: 'xa' } }), 'saga.classes.payment.mode')).toBe('expected saga, tcc or outbox');
    expect(pathsOf(saga({ payment: { mode: 'saga', rollout: { mode: 'tcc', percent: 101 } }, refund: { mode: 'tcc', rollout: { mode: 'saga', percent: -1 } } }))).toEqual([
      'saga.classes.payment.rollout.percent',
      'saga.classes.refund.rollout.percent',
    ]);
    expect(issueAt(saga({ payment: { mode: 'saga', rollout: { mode: 'tcc', percent: 101 } } }), 'saga.classes.payment.rollout.percent')).toBe('expected a percentage from 0 to 100');
    expect(pathsOf(saga({ payment: { mode: 'saga', rollout: { mode: 'tcc' } } }))).toEqual(['saga.classes.payment.rollout.percent']);
    expect(pathsOf(saga({ payment: { mode: 'saga', percent: 5 } }))).toEqual(['saga.classes.payment.percent']);
  });

  it('reads saga.relay with the brokers\' default URLs and refuses bad relay keys by their path', () => {
    const relay = (r: unknown): unknown => ({ shards, saga: { database: 'postgres://h/app', relay: r } });
    const read = (r: unknown) => (parseConfig(relay(r)) as { saga: { relay: unknown } }).saga.relay;
    expect(read({ sink: { kind: 'nats' } })).toEqual({ sink: { kind: 'nats', url: 'nats://127.0.0.1:4222', stream: null }, intervalMs: 1000, batchSize: 100, backCheck: null });
    expect(read({ sink: { kind: 'rabbitmq', exchange: 'ex' }, intervalMs: 20, batchSize: 5, backCheck: { database: 'postgres://b/shop', schema: 'biz' } })).toEqual({
      sink: { kind: 'rabbitmq', url: 'amqp://guest:guest@127.0.0.1:5672', exchange: 'ex' },
      intervalMs: 20,
      batchSize: 5,
      backCheck: { kind: 'database', database: 'postgres://b/shop', schema: 'biz', afterMs: 30_000, intervalMs: 5000 },
    });
    expect(read({ sink: { kind: 'nats', stream: { name: 'S', subjects: ['a.>'] } }, backCheck: { url: 'http://app/check', afterMs: 10 } })).toMatchObject({
      sink: { stream: { name: 'S', subjects: ['a.>'] } },
      backCheck: { kind: 'http', url: 'http://app/check', afterMs: 10, intervalMs: 5000 },
    });
    expect(pathsOf(relay({}))).toEqual(['saga.relay.sink']);
    expect(issueAt(relay({ sink: { kind: 'kafka' } }), 'saga.relay.sink.kind')).toBe('expected nats or rabbitmq');
    expect(pathsOf(relay({ sink: { kind: 'nats', exchange: 'x' } }))).toEqual(['saga.relay.sink.exchange']);
    expect(pathsOf(relay({ sink: { kind: 'rabbitmq', url: 'nats://h:4222' } }))).toEqual(['saga.relay.sink.url']);
    expect(pathsOf(relay({ sink: { kind: 'nats' }, intervalMs: 0, batchSize: 0, lag: 1 }))).toEqual(['saga.relay.intervalMs', 'saga.relay.batchSize', 'saga.relay.lag']);
    expect(pathsOf(relay({ sink: { kind: 'nats' }, backCheck: { afterMs: 5 } }))).toEqual(['saga.relay.backCheck']);
    expect(pathsOf(relay({ sink: { kind: 'nats' }, backCheck: { url: 'http://a', database: 'postgres://b' } }))).toEqual(['saga.relay.backCheck']);
    expect(pathsOf(relay({ sink: { kind: 'nats' }, backCheck: { url: 'ftp://a' } }))).toEqual(['saga.relay.backCheck.url']);
    expect(pathsOf({ shards, saga: { database: 'postgres://h/app', inboxRetentionMs: -1 } })).toEqual(['saga.inboxRetentionMs']);
  });

  it('refuses a sharding key that is not a column name', () => {
    expect(pathsOf({ shards, tables: { orders: { key: '1user' } } })).toEqual(['tables.orders.key']);
    expect(issueAt({ shards, tables: { orders: { key: 'user id' } } }, 'tables.orders.key')).toBe('expected a column name');
    expect(pathsOf({ shards, tables: { orders: {} } })).toEqual(['tables.orders.key']);
    expect(pathsOf({ shards, tables: { orders: 'user_id' } })).toEqual(['tables.orders']);
  });

  it('refuses an unknown algorithm', () => {
    expect(pathsOf({ shards, tables: { orders: { key: 'id', algorithm: 'consistent' } } })).toEqual(['tables.orders.algorithm']);
    expect(issueAt({ shards, tables: { orders: { key: 'id', algorithm: 'consistent' } } }, 'tables.orders.algorithm')).toContain('range');
  });

  it('refuses broadcast rules that are not exactly { broadcast: true }', () => {
    expect(pathsOf({ shards, tables: { countries: { broadcast: false } } })).toEqual(['tables.countries.broadcast']);
    expect(pathsOf({ shards, tables: { countries: { broadcast: true, key: 'id' } } })).toEqual(['tables.countries.key']);
  });

  it('refuses ranges without algorithm: range, and range rules without ranges', () => {
    expect(pathsOf({ shards, tables: { e: { key: 'id', ranges: [{ shard: 's0' }] } } })).toEqual(['tables.e.ranges']);
    expect(pathsOf({ shards, tables: { e: { key: 'id', algorithm: 'mod', ranges: [{ shard: 's0' }] } } })).toEqual(['tables.e.ranges']);
    expect(pathsOf({ shards, tables: { e: { key: 'id', algorithm: 'range' } } })).toEqual(['tables.e.ranges']);
    expect(pathsOf({ shards, tables: { e: { key: 'id', algorithm: 'range', ranges: [] } } })).toEqual(['tables.e.ranges']);
  });

  it('refuses range entries on unknown shards', () => {
    const rule = { key: 'id', algorithm: 'range', ranges: [{ below: 10, shard: 's7' }, { shard: 's1' }] };
    expect(pathsOf({ shards, tables: { e: rule } })).toEqual(['tables.e.ranges[0].shard']);
  });

  it('requires exactly one catch-all entry, last', () => {
    const noCatchAll = { key: 'id', algorithm: 'range', ranges: [{ below: 10, shard: 's0' }, { below: 20, shard: 's1' }] };
    expect(pathsOf({ shards, tables: { e: noCatchAll } })).toEqual(['tables.e.ranges']);
    const early = { key: 'id', algorithm: 'range', ranges: [{ shard: 's0' }, { below: 20, shard: 's1' }] };
    expect(pathsOf({ shards, tables: { e: early } })).toEqual(['tables.e.ranges[0]', 'tables.e.ranges']);
    const two = { key: 'id', algorithm: 'range', ranges: [{ shard: 's0' }, { shard: 's1' }] };
    expect(pathsOf({ shards, tables: { e: two } })).toEqual(['tables.e.ranges[0]']);
  });

  it('refuses range bounds out of order or of mixed types', () => {
    const down = { key: 'id', algorithm: 'range', ranges: [{ below: 20, shard: 's0' }, { below: 10, shard: 's1' }, { shard: 's0' }] };
    expect(pathsOf({ shards, tables: { e: down } })).toEqual(['tables.e.ranges[1].below']);
    const mixed = { key: 'id', algorithm: 'range', ranges: [{ below: 20, shard: 's0' }, { below: 'x', shard: 's1' }, { shard: 's0' }] };
    expect(pathsOf({ shards, tables: { e: mixed } })).toEqual(['tables.e.ranges']);
  });

  it('refuses schema-qualified table names', () => {
    expect(pathsOf({ shards, tables: { 'public.orders': { key: 'id' } } })).toEqual(['tables["public.orders"]']);
  });

  it('refuses shard URLs whose TLS settings cannot work, naming the shard', () => {
    expect(issueAt({ shards: { s0: `${shards.s0}?sslmode=allow` } }, 'shards.s0')).toMatch(/sslmode=allow is not supported/);
    expect(issueAt({ shards: { s0: `${shards.s0}?sslmode=verify-full` } }, 'shards.s0')).toMatch(/needs sslrootcert/);
    expect(issueAt({ shards: { s0: `${shards.s0}?sslmode=verify-ca&sslrootcert=/no/such/ca.crt` } }, 'shards.s0')).toMatch(/sslrootcert file \/no\/such\/ca\.crt does not exist/);
    expect(issueAt({ shards: { s0: `${shards.s0}?channel_binding=maybe` } }, 'shards.s0')).toMatch(/channel_binding=maybe/);
    expect(parseConfig({ shards: { s0: `${shards.s0}?sslmode=verify-full&sslrootcert=system` } }).shards[0]).toMatchObject({ kind: 'postgres' });
  });

  it('resolves certificate paths in shard URLs and tls against the configuration folder', () => {
    const dir = mkdtempSync(join(tmpdir(), 'shardgate-config-tls-'));
    try {
      writeFileSync(join(dir, 'ca.crt'), 'x');
      const cfg = parseConfig(
        { shards: { s0: `${shards.s0}?sslmode=verify-ca&sslrootcert=ca.crt` }, tls: { cert: 'server.crt', key: 'server.key' } },
        { baseDir: dir },
      );
      expect(new URL((cfg.shards[0] as { url: string }).url).searchParams.get('sslrootcert')).toBe(join(dir, 'ca.crt'));
      expect(cfg.tls).toEqual({ cert: join(dir, 'server.crt'), key: join(dir, 'server.key'), required: false });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses an incomplete tls section', () => {
    expect(pathsOf({ shards, tls: { cert: 'a.crt' } })).toEqual(['tls.key']);
    expect(pathsOf({ shards, tls: { cert: 'a.crt', key: 'a.key', required: 'yes' } })).toEqual(['tls.required']);
  });

  it('reports every problem at once', () => {
    expect(pathsOf({ shards, defaultShard: 'x', listen: '0.0.0.0:1', auth: { trust: true } }).sort()).toEqual(['auth.trust', 'defaultShard']);
  });
});

describe('loadConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shardgate-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('uses the embedded default without a source', () => {
    const cfg = loadConfig(undefined, { env: {} });
    expect(cfg.listen).toEqual({ host: '127.0.0.1', port: 6432 });
    expect(cfg.database).toBe('app');
    expect(cfg.auth).toEqual({ users: [{ name: 'app', password: 'app' }], trust: false });
    expect(cfg.admin).toBeNull();
    expect(cfg.defaultShard).toBe('s0');
    expect(cfg.shards).toEqual(['s0', 's1', 's2', 's3'].map((s) => ({ kind: 'embedded', name: s, dir: resolve('.shardgate/data', s) })));
    expect([...cfg.tables]).toEqual([
      ['account', { kind: 'hash', key: 'id' }],
      ['trade', { kind: 'hash', key: 'account_id' }],
    ]);
  });

  it('puts the default shards under another folder on request', () => {
    expect(parseConfig(defaultConfig('/var/lib/sg/')).shards[3]).toEqual({ kind: 'embedded', name: 's3', dir: '/var/lib/sg/s3' });
  });

  it('reads YAML and resolves embedded folders from the file\'s folder', () => {
    const file = join(dir, 'shardgate.yaml');
    writeFileSync(file, 'listen: 127.0.0.1:7001\nshards:\n  a: { embedded: ./data/a }\n  b: postgres://postgres@127.0.0.1:5/app\ntables:\n  orders: { key: user_id, algorithm: mod }\n');
    const cfg = loadConfig(file);
    expect(cfg.listen.port).toBe(7001);
    expect(cfg.shards[0]).toEqual({ kind: 'embedded', name: 'a', dir: join(dir, 'data/a') });
    expect(cfg.tables.get('orders' as never)).toEqual({ kind: 'mod', key: 'user_id' });
  });

  it('takes the file from SHARDGATE_CONFIG', () => {
    const file = join(dir, 'env.yaml');
    writeFileSync(file, 'database: envdb\nshards: { s0: { embedded: ./x } }\n');
    expect(loadConfig(undefined, { env: { SHARDGATE_CONFIG: file } }).database).toBe('envdb');
  });

  it('accepts a raw object and applies overrides before validating', () => {
    expect(loadConfig({ shards }).shards).toHaveLength(2);
    expect(loadConfig({ shards }, { overrides: { listen: '127.0.0.1:7777' } }).listen.port).toBe(7777);
    expect(() => loadConfig({ shards }, { overrides: { listen: 'nope' } })).toThrow(ConfigError);
  });

  it('names the file for a missing file and the line for bad YAML', () => {
    const missing = join(dir, 'missing.yaml');
    expect(() => loadConfig(missing)).toThrow(ConfigError);
    try {
      loadConfig(missing);
    } catch (err) {
      expect((err as ConfigError).issues[0]?.path).toBe(missing);
    }
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'shards:\n  s0: [unclosed\n');
    try {
      loadConfig(bad);
      throw new Error('accepted');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).issues[0]?.path).toMatch(new RegExp(`^${bad.replace(/[.]/g, '\\.')}:\\d+:\\d+$`));
    }
    const dup = join(dir, 'dup.yaml');
    writeFileSync(dup, 'shards: { s0: { embedded: ./a } }\nlisten: 127.0.0.1:1\nlisten: 127.0.0.1:2\n');
    expect(() => loadConfig(dup)).toThrow(ConfigError);
  });

  it('validates a file\'s content with key paths', () => {
    const file = join(dir, 'wrong.yaml');
    writeFileSync(file, 'shards: { s0: { embedded: ./a } }\ntables:\n  orders: { key: "user id" }\n');
    expect(() => loadConfig(file)).toThrow('tables.orders.key: expected a column name');
  });

  it('refuses an empty file', () => {
    const file = join(dir, 'empty.yaml');
    writeFileSync(file, '');
    expect(() => loadConfig(file)).toThrow(ConfigError);
  });
});
