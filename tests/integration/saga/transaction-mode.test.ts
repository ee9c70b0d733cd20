import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metrics } from '../../../src/observe/metrics.js';
import type { RetryPolicy } from '../../../src/saga/retry-policy.js';
import { SagaAdmin } from '../../../src/saga/saga-admin.js';
import { SagaCoordinator, type SagaLog } from '../../../src/saga/saga-coordinator.js';
import { chooseMode, outboxSaga, tccSaga, type SagaModeConfig } from '../../../src/saga/transaction-class.js';
import { parseProm } from '../../unit/observe/prom-text.js';
import type { PgCluster } from '../../harness/cluster.js';
import { openSagaFixture, type SagaFixture } from './saga-fixture.js';
import type { Participant} from './participant.js';
import { paymentClass } from './participant.js';

const fast: RetryPolicy = { baseMs: 5, maxMs: 20, maxAttempts: 4, deadlineMs: 60_000 };

/** A coordinator process (mode-child.ts) and the lines it printed. */
class Child {
  readonly lines: string[] = [];
  #waiters: (() => void)[] = [];
  readonly #proc: ChildProcess;

  constructor(env: Record<string, string>) {
    this.#proc = spawn(process.execPath, ['--import', 'tsx', join('tests', 'integration', 'saga', 'mode-child.ts')], {
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    createInterface({ input: this.#proc.stdout! }).on('line', (l) => {
      this.lines.push(l);
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  /** Resolves with the first line matching `test` printed after `from` lines. */
  async line(test: (l: string) => boolean, from = 0): Promise<string> {
    for (;;) {
      const found = this.lines.slice(from).find(test);
      if (found !== undefined) return found;
      await new Promise<void>((r) => this.#waiters.push(r));
    }
  }

  /** Submits the gids through the child and returns the mode it chose for each. */
  async submit(gids: readonly string[]): Promise<Map<string, string>> {
    for (const gid of gids) this.#proc.stdin!.write(`${gid}\n`);
    const out = new Map<string, string>();
    for (const gid of gids) out.set(gid, (await this.line((l) => l.startsWith(`submitted ${gid} `))).split(' ')[2]!);
    return out;
  }

  /** Sends SIGHUP and returns the child's answer (`reloaded` or `refused …`). */
  async reload(): Promise<string> {
    const from = this.lines.length;
    this.#proc.kill('SIGHUP');
    return this.line((l) => l === 'reloaded' || l.startsWith('refused '), from);
  }

  async kill(): Promise<void> {
    if (this.#proc.exitCode !== null || this.#proc.signalCode !== null) return;
    this.#proc.kill('SIGKILL');
    await once(this.#proc, 'exit');
  }
}

describe('transaction classes: the mode of each global transaction, switched by configuration reload', () => {
  let cluster: PgCluster;
  let pool: pg.Pool;
  let shop: Participant;
  let fixture: SagaFixture;
  let dir: string;
  const children: Child[] = [];

  beforeAll(async () => {
    fixture = await openSagaFixture();
    ({ cluster, pool, shop } = fixture);
    dir = mkdtempSync(join(tmpdir(), 'shardgate-modes-'));
  });

  afterAll(async () => {
    await Promise.all(children.map((c) => c.kill()));
    await fixture?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** Writes the configuration file with `payment`'s settings (as YAML lines under saga.classes). */
  function writeConfig(file: string, payment: string): void {
    writeFileSync(file, [
      'shards:',
      `  s0: ${cluster.url('app')}`,
      'saga:',
      `  database: ${cluster.url('app')}`,
      '  classes:',
      '    payment:',
      ...payment.split('\n').map((l) => `      ${l}`),
      '',
    ].join('\n'));
  }

  async function settled(gid: string): Promise<SagaLog> {
    const reader = new SagaCoordinator({ pool, id: 'reader', definitions: {} });
    return reader.outcome(gid, { timeoutMs: 60_000, pollMs: 20 });
  }

  it('splits new payments by the gid hash at the rollout percentage, and a reload changes new ones only, across a restart too', async () => {
    const file = join(dir, 'shardgate.yaml');
    // Every request waits at the gate until the test opens it: the payments submitted first stay in flight.
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    shop.answer = async () => {
      await gate;
      return { status: 200 };
    };
    writeConfig(file, 'mode: saga');
    const env = { CONFIG: file, BASE_URL: shop.url, COORDINATOR_ID: 'first' };
    const first = new Child(env);
    children.push(first);
    await first.line((l) => l === 'ready');

    const before = Array.from({ length: 20 }, (_, i) => `pay-before-${i}`);
    const beforeModes = await first.submit(before);
    expect(new Set(beforeModes.values())).toEqual(new Set(['saga']));
    // At least one is inside its step's HTTP call when the configuration changes.
    while (shop.received.length === 0) await new Promise((r) => setTimeout(r, 10));

    writeConfig(file, 'mode: saga\nrollout: { mode: tcc, percent: 30 }');
    expect(await first.reload()).toBe('reloaded');
    const rolled: SagaModeConfig = { mode: 'saga', rollout: { mode: 'tcc', percent: 30 } };
    const after = Array.from({ length: 200 }, (_, i) => `pay-after-${i}`);
    const afterModes = await first.submit(after);
    // Each mode is the one the gid's hash gives under the new settings (so a submit retried with its gid gets it again) …
    for (const gid of after) expect(afterModes.get(gid), gid).toBe(chooseMode(gid, 'saga', rolled));
    // … and 30 % of 200 is 60: a binomial count with a standard deviation of 6.5, within four of them.
    const tcc = after.filter((g) => afterModes.get(g) === 'tcc').length;
    expect(tcc).toBeGreaterThanOrEqual(34);
    expect(tcc).toBeLessThanOrEqual(86);

    // Refused, each with the key path and what to do; the settings in force stay.
    writeConfig(file, 'mode: outbox');
    expect(await first.reload()).toBe(`refused ${JSON.stringify('saga.classes.payment.mode: class "payment" cannot run in mode outbox; it declares saga, tcc')}`);
    writeConfig(file, 'mode: saga\nrollout: { mode: tcc, percent: 150 }');
    expect(await first.reload()).toBe(`refused ${JSON.stringify('saga.classes.payment.rollout.percent: expected a percentage from 0 to 100')}`);
    const refusedAfter = Array.from({ length: 50 }, (_, i) => `pay-kept-${i}`);
    const keptModes = await first.submit(refusedAfter);
    for (const gid of refusedAfter) expect(keptModes.get(gid), gid).toBe(chooseMode(gid, 'saga', rolled));

    // The coordinator dies with payments of both modes in flight; the next one starts under other settings (all TCC).
    await first.kill();
    writeConfig(file, 'mode: tcc');
    const second = new Child({ ...env, COORDINATOR_ID: 'second' });
    children.push(second);
    await second.line((l) => l === 'ready');
    const late = await second.submit(['pay-late-0', 'pay-late-1']);
    expect([...late.values()]).toEqual(['tcc', 'tcc']);
    // The admin API shows each one, still running behind the gate, with its mode.
    const all = new Map([...beforeModes, ...afterModes, ...keptModes, ...late]);
    const listed = (await new SagaAdmin({ pool }).list(['running'], 1000)).filter((s) => all.has(s.gid));
    expect(listed.map((s) => [s.gid, s.mode]).sort()).toEqual([...all].sort());
    open();

    // Every payment ends in the mode it was submitted in, with that mode's calls only.
    for (const [gid, mode] of all) {
      const log = await settled(gid);
      expect([gid, log.status, log.mode]).toEqual([gid, 'committed', mode]);
      const paths = [...new Set(shop.paths(gid))];
      expect([gid, paths]).toEqual([gid, mode === 'tcc' ? ['/tcc/try', '/tcc/confirm'] : ['/saga/debit']]);
    }
    expect(beforeModes.size + afterModes.size + keptModes.size + late.size).toBe(272);
  }, 120_000);

  it('counts the payments submitted per class and mode chosen, as the log records them', async () => {
    shop.answer = () => ({ status: 200 });
    const metrics = new Metrics();
    const modes: SagaModeConfig = { mode: 'tcc', rollout: { mode: 'saga', percent: 40 } };
    const c = new SagaCoordinator({ pool, id: 'm', definitions: {}, classes: { payment: paymentClass(shop.url, fast) }, modes: { payment: modes }, metrics });
    const gids = Array.from({ length: 60 }, (_, i) => `metric-${i}`);
    for (const gid of gids) await c.submit(pool, 'payment', {}, { gid });
    const logged = await pool.query<{ mode: string; n: string }>(`SELECT mode, count(*) AS n FROM shardgate_saga.saga WHERE gid LIKE 'metric-%' GROUP BY mode`);
    const prom = parseProm(await metrics.text());
    const counted = (mode: string): number | undefined => prom.get(`shardgate_saga_started_total{class="payment",mode="${mode}"}`);
    for (const { mode, n } of logged.rows) expect([mode, counted(mode)]).toEqual([mode, Number(n)]);
    expect(new Set(logged.rows.map((r) => r.mode))).toEqual(new Set(['saga', 'tcc']));
    expect(logged.rows.reduce((a, r) => a + Number(r.n), 0)).toBe(60);
  });

  it('adds the mode column to a log written before transaction classes; its sagas are plain definitions', async () => {
    await pool.query(`CREATE SCHEMA legacy;
      CREATE TABLE legacy.saga (gid text PRIMARY KEY, definition text NOT NULL, payload jsonb NOT NULL, status text NOT NULL, traceparent text, tracestate text,
        started_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz, last_error text, max_attempts int NOT NULL, retried_at timestamptz);
      INSERT INTO legacy.saga (gid, definition, payload, status, max_attempts) VALUES ('old-1', 'order', 'null', 'committed', 3)`);
    const c = new SagaCoordinator({ pool, id: 'legacy', definitions: {}, schema: 'legacy' });
    await c.ensureTables();
    expect(await c.inspect('old-1')).toMatchObject({ gid: 'old-1', definition: 'order', mode: null, status: 'committed' });
    await expect(pool.query("UPDATE legacy.saga SET mode = 'xa' WHERE gid = 'old-1'")).rejects.toMatchObject({ code: '23514' });
  });

  it('refuses mode settings that do not fit the classes when the coordinator is built', () => {
    const classes = { payment: paymentClass(shop.url) };
    expect(() => new SagaCoordinator({ pool, id: 'x', definitions: {}, classes, modes: { payment: { mode: 'outbox' } } })).toThrow(
      'saga.classes.payment.mode: class "payment" cannot run in mode outbox; it declares saga, tcc',
    );
    expect(() => new SagaCoordinator({ pool, id: 'x', definitions: {}, classes, modes: { refund: { mode: 'saga' } } })).toThrow('saga.classes.refund: no transaction class "refund"');
    const c = new SagaCoordinator({ pool, id: 'x', definitions: {}, classes, modes: { payment: { mode: 'tcc' } } });
    expect(() => c.setModes({ payment: { mode: 'saga', rollout: { mode: 'outbox', percent: -1 } } })).toThrow(
      'saga.classes.payment.rollout.mode: class "payment" cannot run in mode outbox; it declares saga, tcc\nsaga.classes.payment.rollout.percent: expected a percentage from 0 to 100, got -1',
    );
    expect(c.modes).toEqual({ payment: { mode: 'tcc' } });
  });

  it('TCC mode: a refused try cancels the tries that ran and confirms nothing; a refused confirm is retried, never cancelled', async () => {
    const seen: string[] = [];
    shop.answer = (r, n) => {
      seen.push(r.path);
      if (r.path === '/stock/try') return { status: 409 };
      if (r.path === '/late/confirm' && n <= 2) return { status: 409 };
      return { status: 200 };
    };
    const branch = (name: string): Parameters<typeof tccSaga>[0]['branches'][number] => ({
      name,
      try: { kind: 'http', url: `${shop.url}/${name}/try` },
      confirm: { kind: 'http', url: `${shop.url}/${name}/confirm` },
      cancel: { kind: 'http', url: `${shop.url}/${name}/cancel` },
    });
    const c = new SagaCoordinator({
      pool,
      id: 'tcc',
      definitions: {},
      classes: {
        refused: { defaultMode: 'tcc', modes: { tcc: tccSaga({ branches: [branch('money'), branch('stock')], retry: fast }) } },
        confirmed: { defaultMode: 'tcc', modes: { tcc: tccSaga({ branches: [branch('late')], retry: fast }) } },
      },
      pollIntervalMs: 5,
      onError: (e) => { throw e; },
    });
    c.start();
    try {
      const refused = await c.submit(pool, 'refused', {});
      const log = await c.outcome(refused);
      expect(log.status).toBe('compensated');
      expect(shop.paths(refused).sort()).toEqual(['/money/cancel', '/money/try', '/stock/try']);
      expect(log.steps.map((s) => [s.name, s.status])).toEqual([['money.try', 'compensated'], ['stock.try', 'failed'], ['money.confirm', 'skipped'], ['stock.confirm', 'skipped']]);

      const confirmed = await c.submit(pool, 'confirmed', {});
      const log2 = await c.outcome(confirmed);
      expect(log2.status).toBe('committed');
      expect(shop.paths(confirmed)).toEqual(['/late/try', '/late/confirm', '/late/confirm', '/late/confirm']);
      expect(log2.steps.map((s) => [s.name, s.status, s.calls])).toEqual([['late.try', 'done', 1], ['late.confirm', 'done', 3]]);
    } finally {
      await c.close();
    }
  });

  it('outbox mode: the message is written once, with the gid as its id, when the step commits', async () => {
    const c = new SagaCoordinator({
      pool,
      id: 'ob',
      definitions: {},
      classes: {
        notify: {
          defaultMode: 'saga',
          modes: {
            saga: { steps: [{ name: 'sms', action: { kind: 'http', url: `${shop.url}/sms` } }] },
            outbox: outboxSaga({ topic: 'notify.sms', message: (ctx) => ({ to: (ctx.payload as { to: string }).to }) }),
          },
        },
      },
      modes: { notify: { mode: 'outbox' } },
      pollIntervalMs: 5,
      onError: (e) => { throw e; },
    });
    c.start();
    try {
      const gid = await c.submit(pool, 'notify', { to: '+100' });
      expect((await c.outcome(gid)).mode).toBe('outbox');
      const rows = await pool.query<{ topic: string; payload: unknown }>('SELECT topic, payload FROM shardgate_saga.outbox WHERE id = $1', [gid]);
      expect(rows.rows).toEqual([{ topic: 'notify.sms', payload: { to: '+100' } }]);
      expect(shop.paths(gid)).toEqual([]);
    } finally {
      await c.close();
    }
  });
});
