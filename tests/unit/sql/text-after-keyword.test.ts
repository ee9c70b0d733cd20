import { describe, expect, it } from 'vitest';
import { textAfterKeyword } from '../../../src/sql/text-after-keyword.js';

describe('textAfterKeyword', () => {
  it('takes the statement after PREPARE … AS and DECLARE … FOR as written', () => {
    expect(textAfterKeyword('PREPARE p (int, numeric(10,2)) AS SELECT $1 AS x', 'AS')).toBe('SELECT $1 AS x');
    expect(textAfterKeyword('DECLARE c NO SCROLL CURSOR WITH HOLD FOR\n  SELECT * FROM t FOR UPDATE', 'FOR')).toBe('SELECT * FROM t FOR UPDATE');
    expect(textAfterKeyword('declare "for" cursor for select 1', 'FOR')).toBe('select 1');
  });

  it('skips comments, quoted identifiers, parentheses and words that only contain the keyword', () => {
    expect(textAfterKeyword('PREPARE /* AS */ "AS" (asx) -- AS\n AS /* shardgate:shard=s1 */ SELECT 1', 'AS')).toBe('/* shardgate:shard=s1 */ SELECT 1');
    expect(textAfterKeyword('DECLARE forward_c CURSOR FOR VALUES (1)', 'FOR')).toBe('VALUES (1)');
  });

  it('is null without the keyword', () => {
    expect(textAfterKeyword('PREPARE p', 'AS')).toBeNull();
    expect(textAfterKeyword("PREPARE p 'AS", 'AS')).toBeNull();
  });
});
