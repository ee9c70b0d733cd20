import { beforeAll, describe, expect, it } from 'vitest';
import { shardName, tableName } from '../../../src/config/names.js';
import { PgError } from '../../../src/errors/pg-error.js';
import { combineTags } from '../../../src/planner/command-tag.js';
import { initParser, Planner } from '../../../src/planner/planner.js';
import { LruCache } from '../../../src/sql/lru-cache.js';
import { configs } from './configs.js';

const noHint = { hintShard: null };

beforeAll(async () => {
  await initParser();
});

describe('analysis cache', () => {
  it('counts a miss, then hits for the same text with other parameters', () => {
    const p = new Planner(configs.main!);
    const sql = 'SELECT balance FROM accounts WHERE id = $1';
    p.plan(sql, ['1'], noHint);
    p.plan(sql, ['2'], noHint);
    p.plan(sql, ['3'], noHint);
    expect(p.cacheStats).toEqual({ hits: 2, misses: 1, shapeHits: 0 });
  });

  it('returns the same plan on the hit path, routed by the new values', () => {
    const p = new Planner(configs.main!);
    const sql = 'SELECT * FROM orders WHERE user_id = $1';
    const first = p.plan(sql, ['5'], noHint);
    const again = p.plan(sql, ['5'], noHint);
    expect(again).toBe(first);
    const other = p.plan(sql, ['6'], noHint);
    expect(other.kind === 'shards' && other.statements.map((s) => s.shard)).toEqual(['s2']);
    expect(first.kind === 'shards' && first.statements.map((s) => s.shard)).toEqual(['s1']);
  });

  it('caches refusals of bad SQL without throwing', () => {
    const p = new Planner(configs.main!);
    const plan = p.plan('SELEC 1', [], noHint);
    expect(plan.kind).toBe('refuse');
    expect(plan.kind === 'refuse' && plan.error.code).toBe('42601');
    expect(p.plan('SELEC 1', [], noHint)).toBe(plan);
    expect(p.cacheStats.hits).toBe(1);
  });

  it('forgets the least recently used entry when full', () => {
    const c = new LruCache<string, number>(2);
    c.set('a', 1);
    c.set('b', 2);
    expect(c.get('a')).toBe(1);
    c.set('c', 3);
    expect(c.get('b')).toBeUndefined();
    expect(c.get('a')).toBe(1);
    expect(c.size).toBe(2);
  });
});

describe('hints', () => {
  it('routes to the session hint shard and refuses unknown shards with 22023', () => {
    const p = new Planner(configs.main!);
    const plan = p.plan('SELECT * FROM orders', [], { hintShard: shardName('s2') });
    expect(plan.kind === 'shards' && [plan.route, plan.statements[0]?.shard]).toEqual(['hint', 's2']);
    const bad = p.plan('SELECT * FROM orders', [], { hintShard: shardName('zz') });
    expect(bad.kind === 'refuse' && bad.error.code).toBe('22023');
  });

  it('prefers the comment hint over the session hint', () => {
    const p = new Planner(configs.main!);
    const plan = p.plan('SELECT 1 /* shardgate:shard=s3 */', [], { hintShard: shardName('s1') });
    expect(plan.kind === 'shards' && plan.statements[0]?.shard).toBe('s3');
  });
});

describe('describeShard', () => {
  const p = new Planner(configs.main!);
  it('uses the default shard for unlisted, catalog and table-less statements', () => {
    expect(p.describeShard('SELECT * FROM notes WHERE id = $1', noHint)).toBe('s0');
    expect(p.describeShard('SELECT * FROM pg_class', noHint)).toBe('s0');
    expect(p.describeShard('SELECT $1::int', noHint)).toBe('s0');
  });
  it('uses the first shard for sharded and broadcast tables', () => {
    const other = new Planner({ ...configs.main!, defaultShard: shardName('s2') });
    expect(other.describeShard('SELECT * FROM orders WHERE user_id = $1', noHint)).toBe('s0');
    expect(other.describeShard('INSERT INTO countries (code) VALUES ($1)', noHint)).toBe('s0');
  });
  it('follows hints and throws syntax errors', () => {
    expect(p.describeShard('SELECT * FROM orders', { hintShard: shardName('s3') })).toBe('s3');
    expect(() => p.describeShard('SELEC', noHint)).toThrow(PgError);
  });
});

describe('combineTags', () => {
  it.each([
    [['INSERT 0 2', 'INSERT 0 3'], 'INSERT 0 5'],
    [['UPDATE 1', 'UPDATE 0', 'UPDATE 4'], 'UPDATE 5'],
    [['DELETE 3'], 'DELETE 3'],
    [['SELECT 10', 'SELECT 5'], 'SELECT 15'],
    [['COPY 7', 'COPY 8'], 'COPY 15'],
    [['MERGE 1', 'MERGE 1'], 'MERGE 2'],
    [['CREATE TABLE', 'CREATE TABLE'], 'CREATE TABLE'],
    [[], ''],
  ])('%j → %j', (tags, out) => {
    expect(combineTags(tags)).toBe(out);
  });
});

describe('shardForKey', () => {
  const p = (): Planner => new Planner(configs.main!);
  const singleShard = (planner: Planner, sql: string): string => {
    const plan = planner.plan(sql, [], noHint);
    if (plan.kind !== 'shards' || plan.statements.length !== 1) throw new Error(`expected one shard for ${sql}`);
    return plan.statements[0]!.shard;
  };

  it('places a key where an INSERT of it goes, for hash, mod and range rules', () => {
    const planner = p();
    for (const key of ['0', '7', '42', '-3', '1000000007']) {
      expect(planner.shardForKey(tableName('accounts'), key)).toBe(singleShard(planner, `INSERT INTO accounts (id) VALUES (${key})`));
      expect(planner.shardForKey(tableName('orders'), key)).toBe(singleShard(planner, `INSERT INTO orders (user_id) VALUES (${key})`));
    }
    for (const day of ['2025-06-01', '2026-03-04', '2031-01-01']) {
      expect(planner.shardForKey(tableName('events'), day)).toBe(singleShard(planner, `INSERT INTO events (created_at) VALUES ('${day}')`));
    }
  });

  it('answers the default shard for broadcast and unlisted tables', () => {
    expect(p().shardForKey(tableName('countries'), 'fr')).toBe('s0');
    expect(p().shardForKey(tableName('not_listed'), null)).toBe('s0');
  });

  it('throws 22023 for a NULL key, a non-integer under mod, and a value no range covers', () => {
    const code = (fn: () => unknown): string | undefined => {
      try {
        fn();
      } catch (e) {
        return e instanceof PgError ? e.code : 'not a PgError';
      }
      return undefined;
    };
    expect(code(() => p().shardForKey(tableName('accounts'), null))).toBe('22023');
    expect(code(() => p().shardForKey(tableName('orders'), '1.5'))).toBe('22023');
    expect(code(() => new Planner(configs.ranges!).shardForKey(tableName('readings'), '500'))).toBe('22023');
  });
});
