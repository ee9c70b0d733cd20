import { describe, expect, it } from 'vitest';
import { chooseMode, declaredModes, rolloutBucket, tccSaga } from '../../../src/saga/transaction-class.js';
import { stagesOf } from '../../../src/saga/saga-definition.js';

describe('transaction classes', () => {
  it('splits 10 000 gids at the rollout percentage, the same way every time', () => {
    const gids = Array.from({ length: 10_000 }, (_, i) => `saga-${i}`);
    for (const percent of [0, 1, 10, 50, 99.5, 100]) {
      const picked = gids.filter((g) => chooseMode(g, 'saga', { mode: 'saga', rollout: { mode: 'tcc', percent } }) === 'tcc').length;
      // A binomial count: within four standard deviations of percent % of 10 000 (exact at 0 and 100).
      const sd = Math.sqrt(10_000 * (percent / 100) * (1 - percent / 100));
      expect(Math.abs(picked - percent * 100), `percent ${percent}: ${picked}`).toBeLessThanOrEqual(4 * sd);
    }
    expect(gids.map(rolloutBucket)).toEqual(gids.map(rolloutBucket));
    expect(gids.every((g) => rolloutBucket(g) >= 0 && rolloutBucket(g) < 100)).toBe(true);
  });

  it('gives a gid the rollout mode at a percentage only if it got it at every lower one (raising the percent moves gids one way)', () => {
    const gids = Array.from({ length: 2000 }, (_, i) => `g${i}`);
    const at = (percent: number): Set<string> => new Set(gids.filter((g) => chooseMode(g, 'saga', { mode: 'saga', rollout: { mode: 'tcc', percent } }) === 'tcc'));
    const ten = at(10);
    const twenty = at(20);
    expect([...ten].every((g) => twenty.has(g))).toBe(true);
    expect(twenty.size).toBeGreaterThan(ten.size);
  });

  it('uses the class default without settings and the setting\'s mode without a rollout', () => {
    expect(chooseMode('x', 'tcc', undefined)).toBe('tcc');
    expect(chooseMode('x', 'tcc', { mode: 'saga' })).toBe('saga');
  });

  it('compiles TCC to tries in one stage, compensated by their cancels, then confirms that may not refuse', () => {
    const call = (path: string) => ({ kind: 'http' as const, url: path });
    const def = tccSaga({ branches: ['a', 'b'].map((n) => ({ name: n, try: call(`${n}/try`), confirm: call(`${n}/confirm`), cancel: call(`${n}/cancel`) })) });
    expect(def.steps.map((s) => [s.name, s.compensation, s.mayRefuse])).toEqual([
      ['a.try', call('a/cancel'), undefined],
      ['b.try', call('b/cancel'), undefined],
      ['a.confirm', undefined, false],
      ['b.confirm', undefined, false],
    ]);
    expect(stagesOf(def)).toEqual([0, 0, 1, 1]);
    expect(declaredModes({ defaultMode: 'tcc', modes: { tcc: def, outbox: def } })).toEqual(['tcc', 'outbox']);
  });
});
