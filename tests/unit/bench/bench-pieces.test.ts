import { describe, expect, it } from 'vitest';
import { fullOptions, parseBenchArgs, quickOptions, SECTIONS } from '../../../src/bench/bench-options.js';
import { sortedStreams } from '../../../src/bench/in-process.js';
import { parseStatusKb } from '../../../src/bench/memory.js';
import { pgbouncerIni, supportsPreparedStatements } from '../../../src/bench/pgbouncer-process.js';
import { pgbenchThreads } from '../../../src/bench/pgbench.js';
import { rotate } from '../../../src/bench/select-only.js';
import { median, percentile } from '../../../src/bench/stats.js';

describe('percentile', () => {
  it('interpolates between the closest ranks', () => {
    expect(percentile([1, 2, 3, 4], 50)).toBe(2.5);
    expect(percentile([10, 1, 5], 0)).toBe(1);
    expect(percentile([10, 1, 5], 100)).toBe(10);
    expect(percentile([0, 10], 95)).toBeCloseTo(9.5, 10);
    expect(median([3])).toBe(3);
    expect(Number.isNaN(median([]))).toBe(true);
    expect(() => percentile([1], 101)).toThrow(RangeError);
  });
});

describe('parseBenchArgs', () => {
  it('defaults to the full run with every section', () => {
    const opts = parseBenchArgs([]);
    expect(opts).toEqual(fullOptions());
    expect(opts !== 'help' && [...opts.sections]).toEqual([...SECTIONS]);
  });

  it('--quick shrinks the run and keeps --only and --out in either order', () => {
    const a = parseBenchArgs(['--only', 'tpcb,memory', '--quick', '--out', '/tmp/x']);
    const b = parseBenchArgs(['--quick', '--only', 'tpcb,memory', '--out', '/tmp/x']);
    for (const o of [a, b]) {
      if (o === 'help') throw new Error('unexpected help');
      expect(o.quick).toBe(true);
      expect(o.scale).toBe(quickOptions().scale);
      expect(o.streamRows).toBe(500_000);
      expect([...o.sections]).toEqual(['tpcb', 'memory']);
      expect(o.outDir).toBe('/tmp/x');
    }
  });

  it('--clients, --rounds and --baseline refine either preset, before or after --quick', () => {
    const a = parseBenchArgs(['--clients', '16,64', '--rounds', '3', '--baseline', '/tmp/before', '--quick']);
    const b = parseBenchArgs(['--quick', '--baseline', '/tmp/before', '--rounds', '3', '--clients', '16,64']);
    for (const o of [a, b]) {
      if (o === 'help') throw new Error('unexpected help');
      expect(o.quick).toBe(true);
      expect(o.clientCounts).toEqual([16, 64]);
      expect(o.rounds).toBe(3);
      expect(o.baseline).toBe('/tmp/before');
    }
    expect(() => parseBenchArgs(['--clients', '16,x'])).toThrow(/positive integers/);
    expect(() => parseBenchArgs(['--rounds', '0'])).toThrow(/positive integers/);
  });

  it('refuses unknown arguments and sections, and answers --help', () => {
    expect(() => parseBenchArgs(['--fast'])).toThrow(/unknown argument --fast/);
    expect(() => parseBenchArgs(['--only', 'tpcb,nope'])).toThrow(/unknown section nope/);
    expect(() => parseBenchArgs(['--only'])).toThrow(/needs a value/);
    expect(parseBenchArgs(['--help'])).toBe('help');
  });
});

describe('interleaving', () => {
  it('rotates the sides so each round starts with a different one', () => {
    const sides = ['direct', 'pgbouncer', 'sg1', 'sg4'];
    expect(rotate(sides, 0)).toEqual(sides);
    expect(rotate(sides, 1)).toEqual(['pgbouncer', 'sg1', 'sg4', 'direct']);
    expect(rotate(sides, 5)).toEqual(rotate(sides, 1));
    expect(rotate([], 3)).toEqual([]);
  });

  it('gives pgbench one thread per core, never more than clients', () => {
    expect(pgbenchThreads(1, 2)).toBe(1);
    expect(pgbenchThreads(64, 2)).toBe(2);
    expect(pgbenchThreads(16, 8)).toBe(8);
  });
});

describe('parseStatusKb', () => {
  it('reads kB fields of /proc/<pid>/status', () => {
    const status = 'Name:\tnode\nVmPeak:\t  1234567 kB\nVmHWM:\t  150226 kB\nVmRSS:\t  106445 kB\nThreads:\t11\n';
    expect(parseStatusKb(status, 'VmRSS')).toBe(106_445);
    expect(parseStatusKb(status, 'VmHWM')).toBe(150_226);
    expect(parseStatusKb(status, 'VmSwap')).toBeNull();
  });
});

describe('PgBouncer', () => {
  it('knows which versions keep prepared statements in transaction pooling', () => {
    expect(supportsPreparedStatements([1, 18])).toBe(false);
    expect(supportsPreparedStatements([1, 21])).toBe(true);
    expect(supportsPreparedStatements([2, 0])).toBe(true);
  });

  it('writes a transaction-pooling configuration for one database on loopback', () => {
    const ini = pgbouncerIni({ serverPort: 5433, database: 'app', poolSize: 20, maxClients: 500 }, 6543, '/tmp/pgb');
    expect(ini).toContain('app = host=127.0.0.1 port=5433 dbname=app user=postgres');
    expect(ini).toMatch(/^pool_mode = transaction$/m);
    expect(ini).toMatch(/^listen_addr = 127\.0\.0\.1$/m);
    expect(ini).toMatch(/^listen_port = 6543$/m);
    expect(ini).toMatch(/^default_pool_size = 20$/m);
    expect(ini).not.toContain('max_prepared_statements');
    expect(pgbouncerIni({ serverPort: 1, database: 'app', poolSize: 1, maxClients: 1, preparedStatements: true }, 2, '/d')).toMatch(/^max_prepared_statements = \d+$/m);
  });
});

describe('sortedStreams', () => {
  it('builds interleaved sorted int8 streams in batches of 1000', () => {
    const streams = sortedStreams(4, 2500);
    expect(streams).toHaveLength(4);
    for (const [k, s] of streams.entries()) {
      expect(s.map((b) => b.length)).toEqual([1000, 1000, 500]);
      const ids = s.flat().map((r) => Number(r[0]!.toString()));
      expect(ids[0]).toBe(k);
      expect(ids.every((id, i) => i === 0 || id === ids[i - 1]! + 4)).toBe(true);
    }
  });
});
