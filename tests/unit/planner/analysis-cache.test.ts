import { beforeAll, describe, expect, it } from 'vitest';
import { shardName } from '../../../src/config/names.js';
import { initParser, Planner } from '../../../src/planner/planner.js';
import { configs } from './configs.js';

const noHint = { hintShard: null };

beforeAll(async () => {
  await initParser();
});

describe('statements with literal keys (routed once, then kept)', () => {
  it('gives the same plan on every call, and hints still apply afterwards', () => {
    const p = new Planner(configs.main!);
    const sql = 'SELECT * FROM orders WHERE user_id = 6';
    const first = p.plan(sql, [], noHint);
    expect(first.kind === 'shards' && first.statements.map((s) => s.shard)).toEqual(['s2']);
    expect(p.plan(sql, ['ignored'], noHint)).toBe(first);
    const hinted = p.plan(sql, [], { hintShard: shardName('s3') });
    expect(hinted.kind === 'shards' && [hinted.route, hinted.statements[0]?.shard]).toEqual(['hint', 's3']);
    expect(p.describeShard(sql, noHint)).toBe('s0');
    expect(p.cacheStats).toEqual({ hits: 3, misses: 1, shapeHits: 0 });
  });

  it('keeps the merge of a multi-shard SELECT, a gather and a refusal for the next calls', () => {
    const p = new Planner(configs.main!);
    const merged = 'SELECT id FROM accounts ORDER BY id LIMIT 3 OFFSET 2';
    const m = p.plan(merged, [], noHint);
    expect(m.kind === 'shards' && m.route).toBe('all');
    expect(m.kind === 'shards' && m.merge?.limit).toEqual({ kind: 'value', value: 3 });
    expect(p.plan(merged, [], noHint)).toBe(m);
    const gathered = 'SELECT DISTINCT ON (id) id FROM accounts';
    const g = p.plan(gathered, [], noHint);
    expect(g.kind).toBe('gather');
    expect(p.plan(gathered, [], noHint)).toBe(g);
    // random() over copies would differ from one server's: neither merged nor gathered.
    const refused = 'SELECT DISTINCT ON (id) id, random() FROM accounts';
    const r = p.plan(refused, [], noHint);
    expect(r.kind === 'refuse' && r.error.code).toBe('0A000');
    expect(p.plan(refused, [], noHint)).toBe(r);
  });

  it('still asks for the columns of an INSERT without a column list, and routes by them', () => {
    const p = new Planner(configs.main!);
    const sql = "INSERT INTO accounts VALUES ('x', 7)";
    const ask = p.plan(sql, [], noHint);
    expect(ask.kind === 'refuse' && ask.needsColumns).toBe('accounts');
    const routed = p.plan(sql, [], { hintShard: null, columnsOf: () => ['name', 'id'] });
    expect(routed.kind).toBe('shards');
  });
});

describe('statements that cannot be prepared', () => {
  it('are found when the temporary schema or pg_notify is written with quotes or Unicode escapes', () => {
    const p = new Planner(configs.main!);
    const cases: [string, string][] = [
      ['SELECT * FROM U&"pg\\005ftemp".scratch', 'a temporary object'],
      ['SELECT "PG_NOTIFY"(\'a\', \'b\')', 'LISTEN, UNLISTEN or NOTIFY'],
      ['SELECT U&"\\0070g_notify"(\'a\', \'b\')', 'LISTEN, UNLISTEN or NOTIFY'],
      ['CREATE TEMPORARY TABLE scratch (a int)', 'a temporary object'],
      ['SELECT * INTO TEMP scratch FROM notes', 'a temporary object'],
    ];
    for (const [sql, what] of cases) {
      const plan = p.plan(sql, [], noHint);
      expect(plan.kind === 'shards' && plan.notPreparable, sql).toBe(what);
    }
    const plain = p.plan('SELECT * FROM notes WHERE id = 1', [], noHint);
    expect(plain.kind === 'shards' && plain.notPreparable).toBeUndefined();
  });
});
