import { describe, expect, it } from 'vitest';
import { commandLatency, parsePgbenchLog, parsePgbenchOutput, PgbenchOutputError } from '../../../src/bench/pgbench-output.js';

// Captured from pgbench 15.20 against a PostgreSQL 15 cluster on this kind of machine.
const SELECT_ONLY = `pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 1
query mode: prepared
number of clients: 4
number of threads: 2
maximum number of tries: 1
duration: 2 s
number of transactions actually processed: 9219
number of failed transactions: 0 (0.000%)
latency average = 0.829 ms
initial connection time = 94.739 ms
tps = 4822.200009 (without initial connection time)
`;

const TPCB_PER_COMMAND = `pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: <builtin: TPC-B (sort of)>
scaling factor: 1
query mode: simple
number of clients: 4
number of threads: 2
maximum number of tries: 1
duration: 2 s
number of transactions actually processed: 365
number of failed transactions: 0 (0.000%)
latency average = 21.777 ms
initial connection time = 70.186 ms
tps = 183.677557 (without initial connection time)
statement latencies in milliseconds and failures:
         0.004           0  \\set aid random(1, 100000 * :scale)
         0.002           0  \\set bid random(1, 1 * :scale)
         0.002           0  \\set tid random(1, 10 * :scale)
         0.001           0  \\set delta random(-5000, 5000)
         0.924           0  BEGIN;
         0.734           0  UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
         0.961           0  SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
         4.000           0  UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
        10.102           0  UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
         0.493           0  INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
         4.387           0  END;
`;

// PostgreSQL 14's pgbench: no failures column, "excluding" wording.
const PG14 = `transaction type: <builtin: select only>
scaling factor: 16
query mode: simple
number of clients: 16
number of threads: 2
duration: 5 s
number of transactions actually processed: 182345
latency average = 0.438 ms
latency stddev = 0.120 ms
initial connection time = 12.500 ms
tps = 36512.4 (without initial connection time)
statement latencies in milliseconds:
         0.002  \\set aid random(1, 100000 * :scale)
         0.421  SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
`;

describe('parsePgbenchOutput', () => {
  it('reads tps, transaction counts and latency of a select-only run', () => {
    const s = parsePgbenchOutput(SELECT_ONLY);
    expect(s.tps).toBeCloseTo(4822.200009, 6);
    expect(s.transactions).toBe(9219);
    expect(s.failedTransactions).toBe(0);
    expect(s.latencyAverageMs).toBeCloseTo(0.829, 6);
    expect(s.initialConnectionMs).toBeCloseTo(94.739, 6);
    expect(s.queryMode).toBe('prepared');
    expect(s.clients).toBe(4);
    expect(s.threads).toBe(2);
    expect(s.scale).toBe(1);
    expect(s.transactionType).toBe('<builtin: select only>');
    expect(s.commands).toEqual([]);
  });

  it('reads every per-command latency with its failures, in script order', () => {
    const s = parsePgbenchOutput(TPCB_PER_COMMAND);
    expect(s.commands).toHaveLength(11);
    expect(s.commands[0]).toEqual({ command: '\\set aid random(1, 100000 * :scale)', latencyMs: 0.004, failures: 0 });
    expect(s.commands[10]).toEqual({ command: 'END;', latencyMs: 4.387, failures: 0 });
    expect(commandLatency(s, /^(END|COMMIT)\b/i)).toBe(4.387);
    expect(commandLatency(s, /^UPDATE pgbench_branches/)).toBe(10.102);
    expect(commandLatency(s, /^ROLLBACK/)).toBeNull();
  });

  it('reads the older format without a failures column', () => {
    const s = parsePgbenchOutput(PG14);
    expect(s.tps).toBeCloseTo(36512.4, 6);
    expect(s.latencyStddevMs).toBeCloseTo(0.12, 6);
    expect(s.failedTransactions).toBe(0);
    expect(s.commands).toEqual([
      { command: '\\set aid random(1, 100000 * :scale)', latencyMs: 0.002, failures: null },
      { command: 'SELECT abalance FROM pgbench_accounts WHERE aid = :aid;', latencyMs: 0.421, failures: null },
    ]);
  });

  it('refuses the output of an aborted run', () => {
    const aborted = 'pgbench: error: connection to server failed\npgbench: fatal: Run was aborted; the above results are incomplete.\n';
    expect(() => parsePgbenchOutput(aborted)).toThrow(PgbenchOutputError);
    expect(() => parsePgbenchOutput(SELECT_ONLY.replace(/^tps = .*$/m, ''))).toThrow(PgbenchOutputError);
  });
});

describe('parsePgbenchLog', () => {
  it('turns the microsecond column into milliseconds and skips failed and skipped transactions', () => {
    const log = ['1 1 68049 0 1795961001 339837', '0 1 76801 0 1795961001 348464', '1 2 failed 0 1795961001 363114', '2 7 skipped 0 1795961001 363999 12', '', 'garbage'].join('\n');
    expect(parsePgbenchLog(log)).toEqual([68.049, 76.801]);
  });
});
