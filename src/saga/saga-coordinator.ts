/**
 * The saga coordinator: a durable log in PostgreSQL (one row per saga, one per
 * saga and step) and pollers that claim due sagas with
 * `FOR UPDATE SKIP LOCKED`, run the due steps of the current stage, and record
 * the outcome in the same transaction. Any number of coordinators may share a
 * database; the argument for why no step runs twice at once and why a dead
 * coordinator's work is resumed is in README.md.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { sgError } from '../errors/catalogue.js';
import type { Queryable } from '../library/shard-gate.js';
import type { Metrics, SagaEnd } from '../observe/metrics.js';
import { outgoingHeaders, runWithPropagation } from '../observe/propagation/index.js';
import { decide, defaultRetryPolicy, type RetryDecision, type StepResult } from './retry-policy.js';
import { callHttp, checkDefinition, runInStep, stagesOf, type SagaDefinition, type StepCall, type StepContext, type StepPhase } from './saga-definition.js';
import { cleanupBarrier } from './barrier.js';
import { callGrpc } from './grpc-step.js';
import { cleanupCancelledMessages, cleanupInbox, cleanupOutbox } from './outbox.js';
import { cleanupFinishedMessageDecisions } from './two-phase-message.js';
import { createIdempotently, deleteInBatches, inTransactionClient, olderThan, qualified, type CleanupResult } from './saga-schema.js';
import { ConfigError } from '../config/config-error.js';
import { checkClass, checkModes, chooseMode, declaredModes, type SagaModeConfig, type TransactionClass, type TransactionMode } from './transaction-class.js';

/**
 * A saga's state: running forward, compensating, or a terminal state.
 * `exhausted` is terminal for the coordinator but not for an operator, who
 * may retry it (back to due) or abandon it (`abandoned`, through the admin API).
 */
export type SagaStatus = 'running' | 'compensating' | 'committed' | 'compensated' | 'exhausted' | 'abandoned';

/** A step's state in the log. */
export type StepStatus = 'pending' | 'done' | 'failed' | 'compensating' | 'compensated' | 'skipped' | 'exhausted' | 'abandoned';

/** One step's log row. */
export interface StepLog {
  readonly step: number;
  readonly name: string;
  readonly stage: number;
  readonly status: StepStatus;
  /** Failed attempts of the current phase (ONGOING answers not counted). */
  readonly attempts: number;
  /** Every attempt of either phase. */
  readonly calls: number;
  readonly intervalMs: number;
  readonly nextAttemptAt: Date;
  /** The coordinator that recorded the last attempt. */
  readonly owner: string | null;
  readonly lastError: string | null;
}

/** A saga's log: its row and its steps' rows. */
export interface SagaLog {
  readonly gid: string;
  /** The definition's name, or the transaction class's. */
  readonly definition: string;
  /** The mode chosen at submit for a transaction class; null for a plain definition. */
  readonly mode: TransactionMode | null;
  readonly status: SagaStatus;
  /** For `exhausted`: `RETRY_EXHAUSTED: step <name>: <last error>`; for `compensated`: the FAILURE reason. */
  readonly lastError: string | null;
  readonly steps: readonly StepLog[];
}

/** Options of a coordinator. */
export interface CoordinatorOptions {
  /** Connections to the saga database; each claimed saga holds one for the duration of its attempts. */
  readonly pool: pg.Pool;
  /** Recorded as the owner of the attempts it runs. */
  readonly id: string;
  readonly definitions: Readonly<Record<string, SagaDefinition>>;
  /**
   * Transaction classes (transaction-class.ts): each runs in one of the modes
   * it declares, chosen per global transaction at submit. Their names share
   * the namespace of `definitions`.
   */
  readonly classes?: Readonly<Record<string, TransactionClass>>;
  /** The mode settings of the classes (the configuration's `saga.classes`); replaced at run time by `setModes`. */
  readonly modes?: Readonly<Record<string, SagaModeConfig>>;
  readonly schema?: string;
  /** Sleep between polls that found nothing due; 200 ms by default. */
  readonly pollIntervalMs?: number;
  /** Sagas worked on at once by this coordinator; 4 by default (0: none, for a coordinator that only cleans up). */
  readonly concurrency?: number;
  /**
   * Where step latencies, retries, exhausted steps and saga ends are counted
   * (the registry the proxy's /metrics serves). Counted only after the move
   * that recorded them committed, so a move rolled back by a crash or an
   * error counts nothing.
   */
  readonly metrics?: Metrics;
  /**
   * Deletes finished sagas (committed, compensated, abandoned; never exhausted
   * ones, which wait for an operator) older than `retentionMs`, and with
   * `outbox` / `barrier` also sent outbox rows and barrier fences of the same
   * schema, `batch` rows per statement (1000 by default), every `intervalMs`
   * (60 000 by default) while started. With `cancelled`, cancelled two-phase
   * messages prepared that long ago; with `inboxRetentionMs`, inbox rows
   * received longer ago than it; with `messageDecisions`, the decision rows
   * (in that business database) of two-phase messages no longer prepared in
   * this outbox, older than the retention. Absent: no cleanup runs.
   */
  readonly cleanup?: {
    readonly retentionMs: number;
    readonly batch?: number;
    readonly intervalMs?: number;
    readonly outbox?: boolean;
    readonly barrier?: boolean;
    readonly cancelled?: boolean;
    readonly inboxRetentionMs?: number;
    readonly messageDecisions?: { readonly client: Queryable; readonly schema?: string };
  };
  /** Called with errors of the poll loop (the saga stays due and is retried); a process warning by default. */
  readonly onError?: (err: unknown) => void;
}

interface ClaimedSaga {
  gid: string;
  definition: string;
  mode: TransactionMode | null;
  payload: unknown;
  status: SagaStatus;
  traceparent: string | null;
  tracestate: string | null;
  started_ms: number;
}

interface StepRow {
  step: number;
  name: string;
  stage: number;
  status: StepStatus;
  attempts: number;
  calls: number;
  interval_ms: number;
  due: boolean;
}

const SAGA_CHECK = "('running', 'compensating', 'committed', 'compensated', 'exhausted', 'abandoned')";
const STEP_CHECK = "('pending', 'done', 'failed', 'compensating', 'compensated', 'skipped', 'exhausted', 'abandoned')";

/** Creates the saga log tables and indexes if missing; idempotent and safe from several processes at once. */
export async function ensureSagaTables(client: Queryable, schema?: string): Promise<void> {
  const saga = qualified(schema, 'saga');
  const step = qualified(schema, 'saga_step');
  await createIdempotently(client, schema, [
    `CREATE TABLE IF NOT EXISTS ${saga} (
       gid text PRIMARY KEY,
       definition text NOT NULL,
       mode text CHECK (mode IN ('saga', 'tcc', 'outbox')),
       payload jsonb NOT NULL,
       status text NOT NULL CHECK (status IN ${SAGA_CHECK}),
       traceparent text,
       tracestate text,
       started_at timestamptz NOT NULL DEFAULT now(),
       finished_at timestamptz,
       last_error text,
       max_attempts int NOT NULL,
       retried_at timestamptz)`,
    `CREATE TABLE IF NOT EXISTS ${step} (
       gid text NOT NULL REFERENCES ${saga} ON DELETE CASCADE,
       step int NOT NULL,
       name text NOT NULL,
       stage int NOT NULL,
       status text NOT NULL CHECK (status IN ${STEP_CHECK}),
       attempts int NOT NULL DEFAULT 0,
       calls int NOT NULL DEFAULT 0,
       interval_ms int NOT NULL DEFAULT 0,
       next_attempt_at timestamptz NOT NULL DEFAULT now(),
       owner text,
       last_error text,
       result jsonb,
       PRIMARY KEY (gid, step))`,
    // A log written before transaction classes existed gets the column; its sagas are plain definitions (NULL).
    `ALTER TABLE ${saga} ADD COLUMN IF NOT EXISTS mode text CHECK (mode IN ('saga', 'tcc', 'outbox'))`,
    `CREATE INDEX IF NOT EXISTS saga_step_gid_status ON ${step} (gid, status)`,
    `CREATE INDEX IF NOT EXISTS saga_step_due ON ${step} (next_attempt_at) WHERE status IN ('pending', 'compensating')`,
    `CREATE INDEX IF NOT EXISTS saga_open ON ${saga} (started_at) WHERE status IN ('running', 'compensating')`,
    `CREATE INDEX IF NOT EXISTS saga_exhausted ON ${saga} (started_at) WHERE status = 'exhausted'`,
    `CREATE INDEX IF NOT EXISTS saga_finished ON ${saga} (finished_at) WHERE status IN ('committed', 'compensated', 'abandoned')`,
  ]);
}

/** Turns a local call's outcome (or throw) into a StepResult. */
async function runLocal(run: () => Promise<StepResult | void>): Promise<StepResult> {
  try {
    return (await run()) ?? { kind: 'success' };
  } catch (err) {
    return { kind: 'error', error: err instanceof Error ? err.message : String(err) };
  }
}

/** What one attempt's decision writes to its step row. */
interface StepUpdate {
  readonly status: StepStatus;
  readonly attempts: number;
  readonly intervalMs: number;
  readonly nextAt: number | null;
  readonly lastError: string | null;
  readonly result: unknown;
}

function forwardUpdate(row: StepRow, d: RetryDecision): StepUpdate {
  switch (d.kind) {
    case 'done':
      return { status: 'done', attempts: row.attempts, intervalMs: row.interval_ms, nextAt: null, lastError: null, result: d.value ?? null };
    case 'compensate':
      return { status: 'failed', attempts: row.attempts, intervalMs: row.interval_ms, nextAt: null, lastError: d.reason, result: null };
    case 'retry':
      return { status: 'pending', attempts: d.attempts, intervalMs: d.intervalMs, nextAt: d.at, lastError: d.lastError ?? null, result: null };
    case 'exhausted':
      return { status: 'exhausted', attempts: row.attempts + 1, intervalMs: row.interval_ms, nextAt: null, lastError: d.lastError, result: null };
  }
}

function compensationUpdate(row: StepRow, d: RetryDecision): StepUpdate {
  switch (d.kind) {
    case 'done':
      return { status: 'compensated', attempts: row.attempts, intervalMs: row.interval_ms, nextAt: null, lastError: null, result: null };
    // A compensation may not refuse: a FAILURE answer leaves work an operator must finish.
    case 'compensate':
      return { status: 'exhausted', attempts: row.attempts, intervalMs: row.interval_ms, nextAt: null, lastError: `compensation refused: ${d.reason}`, result: null };
    case 'retry':
      return { status: 'compensating', attempts: d.attempts, intervalMs: d.intervalMs, nextAt: d.at, lastError: d.lastError ?? null, result: null };
    case 'exhausted':
      return { status: 'exhausted', attempts: row.attempts + 1, intervalMs: row.interval_ms, nextAt: null, lastError: d.lastError, result: null };
  }
}

/**
 * Runs sagas from the log. `submit` writes a saga; `start` begins polling;
 * `runOnce` claims and advances one due saga (what each poller does in a loop).
 */
export class SagaCoordinator {
  readonly #opts: CoordinatorOptions;
  readonly #saga: string;
  readonly #step: string;
  readonly #classes: Readonly<Record<string, TransactionClass>>;
  #modes: Readonly<Record<string, SagaModeConfig>>;
  /** The (definition or class, mode or '') pairs this coordinator runs: the only sagas it claims. */
  readonly #runs: readonly (readonly [string, string])[];
  #workers: Promise<void>[] = [];
  #closed = false;
  #wake: (() => void)[] = [];

  constructor(opts: CoordinatorOptions) {
    for (const [name, def] of Object.entries(opts.definitions)) checkDefinition(name, def);
    this.#classes = opts.classes ?? {};
    for (const [name, cls] of Object.entries(this.#classes)) {
      if (opts.definitions[name] !== undefined) throw new Error(`"${name}" is both a saga definition and a transaction class; give them different names`);
      checkClass(name, cls);
      for (const [mode, def] of Object.entries(cls.modes)) if (def !== undefined) checkDefinition(`${name} (${mode})`, def);
    }
    this.#runs = [
      ...Object.keys(opts.definitions).map((name) => [name, ''] as const),
      ...Object.entries(this.#classes).flatMap(([name, cls]) => declaredModes(cls).map((mode) => [name, mode] as const)),
    ];
    this.#modes = opts.modes ?? {};
    checkModes(this.#classes, this.#modes);
    this.#opts = opts;
    this.#saga = qualified(opts.schema, 'saga');
    this.#step = qualified(opts.schema, 'saga_step');
  }

  /** The mode settings in force: the ones given to the constructor or to the last successful `setModes`. */
  get modes(): Readonly<Record<string, SagaModeConfig>> {
    return this.#modes;
  }

  /**
   * Puts new mode settings in force for global transactions submitted from
   * now on; the ones already in the log keep the mode they were given. Throws
   * a ConfigError (every problem, by key path) and keeps the settings in force
   * when a setting names a class this coordinator does not run, a mode its
   * class does not declare, or a percent outside 0–100.
   */
  setModes(modes: Readonly<Record<string, SagaModeConfig>>): void {
    checkModes(this.#classes, modes);
    this.#modes = modes;
  }

  /**
   * Reads the configuration again with `read` (e.g. `() => loadConfig(file)`)
   * and puts its `saga.classes` in force with `setModes`. Never throws: a file
   * that does not load or settings that do not fit the classes are refused
   * with the reason, and the settings in force stay.
   */
  reloadModes(read: () => { readonly saga?: { readonly classes?: Readonly<Record<string, SagaModeConfig>> } | null }): { ok: boolean; reason?: string } {
    try {
      this.setModes(read().saga?.classes ?? {});
      return { ok: true };
    } catch (err) {
      if (err instanceof ConfigError || err instanceof Error) return { ok: false, reason: err.message };
      return { ok: false, reason: String(err) };
    }
  }

  /** The definition a saga of `name` runs under in `mode` (null for a plain definition). */
  #definition(name: string, mode: TransactionMode | null): SagaDefinition | undefined {
    return mode === null ? this.#opts.definitions[name] : this.#classes[name]?.modes[mode];
  }

  /** Creates the log tables if missing. */
  async ensureTables(): Promise<void> {
    const client = await this.#opts.pool.connect();
    try {
      await ensureSagaTables(client, this.#opts.schema);
    } finally {
      client.release();
    }
  }

  /**
   * Writes a new saga of `definition` through `client` (one statement: pass a
   * transaction to start the saga atomically with the caller's own change) and
   * returns its gid. The current trace context is kept for its steps.
   */
  async submit(client: Queryable, definition: string, payload: unknown, opts: { gid?: string } = {}): Promise<string> {
    const gid = opts.gid ?? `saga-${randomUUID()}`;
    const cls = this.#classes[definition];
    // Chosen once, here, and written to the log row: a reload changes only the sagas submitted after it.
    const mode = cls === undefined ? null : chooseMode(gid, cls.defaultMode, this.#modes[definition]);
    const def = this.#definition(definition, mode);
    if (def === undefined) throw new Error(`unknown saga "${definition}"; define it in the coordinator's definitions or classes`);
    const stages = stagesOf(def);
    const trace = outgoingHeaders();
    await client.query(
      `WITH g AS (INSERT INTO ${this.#saga} (gid, definition, mode, payload, status, traceparent, tracestate, max_attempts)
                  VALUES ($1, $2, $10, $3, 'running', $4, $5, $9) RETURNING gid)
       INSERT INTO ${this.#step} (gid, step, name, stage, status, next_attempt_at)
       SELECT g.gid, t.step, t.name, t.stage, 'pending', CASE WHEN t.stage = 0 THEN now() ELSE 'infinity' END FROM g, unnest($6::int[], $7::text[], $8::int[]) AS t(step, name, stage)`,
      [gid, definition, JSON.stringify(payload ?? null), trace.traceparent ?? null, trace.tracestate ?? null, def.steps.map((_, i) => i), def.steps.map((s) => s.name), stages, (def.retry ?? defaultRetryPolicy).maxAttempts, mode],
    );
    if (mode !== null) this.#opts.metrics?.sagaStarted(definition, mode);
    return gid;
  }

  /** The saga's log, or undefined when no saga has this gid. */
  async inspect(gid: string): Promise<SagaLog | undefined> {
    const s = await this.#opts.pool.query<{ gid: string; definition: string; mode: TransactionMode | null; status: SagaStatus; last_error: string | null }>(
      `SELECT gid, definition, mode, status, last_error FROM ${this.#saga} WHERE gid = $1`,
      [gid],
    );
    const row = s.rows[0];
    if (row === undefined) return undefined;
    const steps = await this.#opts.pool.query<{ step: number; name: string; stage: number; status: StepStatus; attempts: number; calls: number; interval_ms: number; next_attempt_at: Date; owner: string | null; last_error: string | null }>(
      `SELECT step, name, stage, status, attempts, calls, interval_ms, next_attempt_at, owner, last_error FROM ${this.#step} WHERE gid = $1 ORDER BY step`,
      [gid],
    );
    return {
      gid: row.gid,
      definition: row.definition,
      mode: row.mode,
      status: row.status,
      lastError: row.last_error,
      steps: steps.rows.map((r) => ({
        step: r.step, name: r.name, stage: r.stage, status: r.status, attempts: r.attempts, calls: r.calls,
        intervalMs: r.interval_ms, nextAttemptAt: r.next_attempt_at, owner: r.owner, lastError: r.last_error,
      })),
    };
  }

  /**
   * Waits until the saga has ended and returns its log when it ended
   * committed or compensated (a FAILURE answer was honoured: check `status`).
   * Throws a PgError from the catalogue otherwise: 40003
   * (statement_completion_unknown) when it ended RETRY_EXHAUSTED or was
   * abandoned — a step's outcome is unknown, so the caller must not simply
   * submit again — 57014 when `timeoutMs` (30 s by default) passed first, and
   * 42704 when no saga has the gid. The log is polled every `pollMs`
   * (50 by default); any coordinator may be the one running the saga.
   */
  async outcome(gid: string, opts: { timeoutMs?: number; pollMs?: number } = {}): Promise<SagaLog> {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const log = await this.inspect(gid);
      if (log === undefined) throw sgError('sagaNotFound', { gid });
      if (log.status === 'committed' || log.status === 'compensated') return log;
      if (log.status === 'exhausted') throw sgError('sagaRetryExhausted', { gid, lastError: log.lastError ?? '' });
      if (log.status === 'abandoned') throw sgError('sagaAbandoned', { gid, lastError: log.lastError ?? '' });
      if (Date.now() >= deadline) throw sgError('sagaWaitTimeout', { gid, timeoutMs, status: log.status });
      await new Promise((r) => setTimeout(r, Math.min(opts.pollMs ?? 50, Math.max(0, deadline - Date.now()))));
    }
  }

  /** Starts `concurrency` pollers. */
  start(): void {
    if (this.#workers.length > 0 || this.#closed) return;
    const n = this.#opts.concurrency ?? 4;
    for (let i = 0; i < n; i++) this.#workers.push(this.#loop());
    if (this.#opts.cleanup !== undefined) this.#workers.push(this.#cleanupLoop(this.#opts.cleanup.intervalMs ?? 60_000));
  }

  /**
   * One cleanup pass under the `cleanup` options (see CoordinatorOptions),
   * returning what each table lost. Safe next to live coordinators: only rows
   * of finished sagas are deleted, a row locked by anyone is skipped (and
   * taken by the next pass), and a saga's steps go with it (ON DELETE CASCADE).
   */
  async cleanupOnce(): Promise<{ sagas: CleanupResult; outbox?: CleanupResult; barrier?: CleanupResult; cancelled?: CleanupResult; inbox?: CleanupResult; messageDecisions?: CleanupResult }> {
    const c = this.#opts.cleanup;
    if (c === undefined) throw new Error('this coordinator has no cleanup options; pass cleanup: { retentionMs } to its constructor');
    const batch = c.batch ?? 1000;
    // A table not created yet (an instance with sagas but no outbox, say) has nothing to clean.
    const exists = async (table: string): Promise<boolean> =>
      (await this.#opts.pool.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [qualified(this.#opts.schema, table)])).rows[0]!.t !== null;
    const none: CleanupResult = { deleted: 0, batches: 0 };
    const sagas = !(await exists('saga')) ? none : await deleteInBatches(this.#opts.pool, c.retentionMs, batch, (limit) =>
      `DELETE FROM ${this.#saga} WHERE gid IN (
         SELECT gid FROM ${this.#saga} WHERE status IN ('committed', 'compensated', 'abandoned') AND ${olderThan('finished_at')}
          ORDER BY finished_at ${limit} FOR UPDATE SKIP LOCKED)`,
    );
    const schema = this.#opts.schema !== undefined ? { schema: this.#opts.schema } : {};
    return {
      sagas,
      ...(c.outbox === true ? { outbox: (await exists('outbox')) ? await cleanupOutbox(this.#opts.pool, c.retentionMs, { ...schema, batch }) : none } : {}),
      ...(c.barrier === true ? { barrier: (await exists('barrier')) ? await cleanupBarrier(this.#opts.pool, c.retentionMs, { ...schema, batch }) : none } : {}),
      ...(c.cancelled === true ? { cancelled: (await exists('outbox')) ? await cleanupCancelledMessages(this.#opts.pool, c.retentionMs, { ...schema, batch }) : none } : {}),
      ...(c.inboxRetentionMs !== undefined ? { inbox: (await exists('inbox')) ? await cleanupInbox(this.#opts.pool, c.inboxRetentionMs, { ...schema, batch }) : none } : {}),
      ...(c.messageDecisions !== undefined ? { messageDecisions: await this.#cleanupDecisions(c.messageDecisions, c.retentionMs, batch, exists) } : {}),
    };
  }

  /** Decisions of finished two-phase messages; nothing when either table is missing. */
  async #cleanupDecisions(d: { readonly client: Queryable; readonly schema?: string }, retentionMs: number, batch: number, exists: (table: string) => Promise<boolean>): Promise<CleanupResult> {
    const table = qualified(d.schema, 'message_decision');
    const there = (await d.client.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [table])).rows[0]!.t !== null;
    if (!there || !(await exists('outbox'))) return { deleted: 0, batches: 0 };
    return cleanupFinishedMessageDecisions(d.client, this.#opts.pool, retentionMs, {
      batch,
      ...(d.schema !== undefined ? { schema: d.schema } : {}),
      ...(this.#opts.schema !== undefined ? { outboxSchema: this.#opts.schema } : {}),
    });
  }

  async #cleanupLoop(intervalMs: number): Promise<void> {
    while (!this.#closed) {
      try {
        await this.cleanupOnce();
      } catch (err) {
        this.#report(err);
      }
      await this.#sleep(intervalMs);
    }
  }

  #report(err: unknown): void {
    (this.#opts.onError ?? ((e) => process.emitWarning(`saga coordinator ${this.#opts.id}: ${e instanceof Error ? e.message : String(e)}`)))(err);
  }

  /** Resolves after `ms`, or at once when the coordinator is closed. */
  #sleep(ms: number): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const t = setTimeout(() => done(), ms);
      const done = (): void => {
        clearTimeout(t);
        this.#wake = this.#wake.filter((w) => w !== done);
        resolve();
      };
      this.#wake.push(done);
    });
  }

  /** Stops polling and waits for the attempts in flight to be recorded. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const w of this.#wake.splice(0)) w();
    await Promise.all(this.#workers);
    this.#workers = [];
  }

  async #loop(): Promise<void> {
    while (!this.#closed) {
      let claimed = false;
      try {
        claimed = await this.runOnce();
      } catch (err) {
        this.#report(err);
      }
      if (!claimed) await this.#sleep(this.#opts.pollIntervalMs ?? 200);
    }
  }

  /**
   * Claims one saga with a due step (skipping sagas another coordinator holds),
   * runs the due steps of its current stage, records their outcomes and
   * commits, then continues with the same saga while it has due steps.
   * Returns false when nothing was due.
   *
   * The saga row stays locked for the whole attempt. If this process dies
   * before the commit, PostgreSQL rolls the transaction back when the
   * connection drops: no outcome is recorded, the step is still due, and the
   * next coordinator runs it again with the same idempotency key.
   */
  async runOnce(): Promise<boolean> {
    return inTransactionClient(this.#opts.pool, async (client) => {
      let gid: string | null = null;
      // Each move is its own transaction; after one, the same saga is claimed
      // again (if still due and not taken meanwhile) so its next stage follows
      // without waiting for a poll.
      for (;;) {
        await client.query('BEGIN');
        // The deadline counts from an operator's retry when there was one, so a retried saga has its whole deadline again.
        const claim: pg.QueryResult<ClaimedSaga> = await client.query<ClaimedSaga>(
          `SELECT g.gid, g.definition, g.mode, g.payload, g.status, g.traceparent, g.tracestate,
                  (extract(epoch FROM COALESCE(g.retried_at, g.started_at)) * 1000)::float8 AS started_ms
             FROM ${this.#saga} g
            WHERE g.status IN ('running', 'compensating') AND ($2::text IS NULL OR g.gid = $2)
              AND (g.definition, COALESCE(g.mode, '')) IN (SELECT * FROM unnest($1::text[], $3::text[]))
              AND EXISTS (SELECT 1 FROM ${this.#step} s
                           WHERE s.gid = g.gid AND s.status IN ('pending', 'compensating') AND s.next_attempt_at <= now())
            ORDER BY g.started_at
            LIMIT 1
            FOR UPDATE OF g SKIP LOCKED`,
          [this.#runs.map((r) => r[0]), gid, this.#runs.map((r) => r[1])],
        );
        const saga: ClaimedSaga | undefined = claim.rows[0];
        if (saga === undefined) {
          await client.query('COMMIT');
          return gid !== null;
        }
        const report = await this.#advance(client, saga);
        await client.query('COMMIT');
        report(this.#opts.metrics);
        if (this.#closed) return true;
        gid = saga.gid;
      }
    });
  }

  /**
   * Runs one move of `saga` in the claim transaction and returns what to count
   * once that transaction has committed.
   */
  async #advance(client: pg.PoolClient, saga: ClaimedSaga): Promise<(metrics: Metrics | undefined) => void> {
    const events: ((m: Metrics) => void)[] = [];
    const report = (m: Metrics | undefined): void => {
      if (m !== undefined) for (const e of events) e(m);
    };
    const def = this.#definition(saga.definition, saga.mode);
    // A class that no longer declares the mode a saga was given: leave the saga due for a coordinator that does.
    if (def === undefined) throw new Error(`saga ${saga.gid} is of class "${saga.definition}" in mode ${saga.mode ?? 'saga'}, which this coordinator does not run; it stays due for one that does`);
    const policy = def.retry ?? defaultRetryPolicy;
    const rows = (
      await client.query<StepRow>(
        `SELECT step, name, stage, status, attempts, calls, interval_ms, next_attempt_at <= now() AS due
           FROM ${this.#step} WHERE gid = $1 ORDER BY step`,
        [saga.gid],
      )
    ).rows;
    const forward = saga.status === 'running';
    // Forward: the lowest stage not yet done. Compensation: the highest stage still to undo.
    const open = rows.filter((r) => (forward ? r.status !== 'done' : r.status === 'compensating'));
    if (open.length === 0) return report;
    const stage = forward ? Math.min(...open.map((r) => r.stage)) : Math.max(...open.map((r) => r.stage));
    const due = open.filter((r) => r.stage === stage && r.due && r.status === (forward ? 'pending' : 'compensating'));
    const phase: StepPhase = forward ? 'action' : 'compensation';

    // Local calls share the claim transaction, so they take turns, each under a savepoint.
    let localTurn: Promise<unknown> = Promise.resolve();
    const results = await Promise.all(
      due.map((row) => {
        const spec = def.steps[row.step]!;
        const call: StepCall | undefined = forward ? spec.action : spec.compensation;
        const ctx: StepContext = { gid: saga.gid, step: row.name, phase, attempt: row.calls + 1, payload: saga.payload, idempotencyKey: `${saga.gid}:${row.name}:${phase}` };
        const trace = { gid: saga.gid, ...(saga.traceparent !== null ? { traceparent: saga.traceparent } : {}), ...(saga.tracestate !== null ? { tracestate: saga.tracestate } : {}) };
        // A local step is timed inside its turn, so the wait for the steps before it is not counted.
        const timed = async (run: () => Promise<StepResult>): Promise<StepResult> => {
          const started = process.hrtime.bigint();
          const result = await run();
          const seconds = Number(process.hrtime.bigint() - started) / 1e9;
          events.push((m) => m.sagaStepTimed(phase, result.kind, seconds));
          return result;
        };
        const attempt = (): Promise<StepResult> => {
          if (call === undefined) return Promise.resolve({ kind: 'success' });
          if (call.kind === 'http') return timed(() => callHttp(call, ctx));
          if (call.kind === 'grpc') return timed(() => callGrpc(call, ctx));
          const mine = localTurn.then(() => timed(() => this.#inSavepoint(client, () => call.run(client, ctx))));
          localTurn = mine.catch(() => undefined);
          return mine;
        };
        return runWithPropagation(trace, () => runInStep(ctx, attempt));
      }),
    );

    const now = (await client.query<{ now: number }>('SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now')).rows[0]!.now;
    let failed: string | undefined;
    let exhausted: string | undefined;
    for (const [i, row] of due.entries()) {
      const answer = results[i]!;
      // A step that may not refuse (a TCC confirm) treats a refusal as an error: retried, never compensated.
      if (forward && answer.kind === 'failure' && def.steps[row.step]!.mayRefuse === false) results[i] = { kind: 'error', error: `refused, but this step may not refuse: ${answer.reason}` };
      const d = decide(policy, results[i]!, { attempts: row.attempts, lastIntervalMs: row.interval_ms, sagaStartedAt: saga.started_ms, now });
      const u = forward ? forwardUpdate(row, d) : compensationUpdate(row, d);
      if (d.kind === 'retry') events.push((m) => m.sagaStepRetried(phase, results[i]!.kind === 'ongoing' ? 'ongoing' : 'error'));
      if (u.status === 'exhausted') events.push((m) => m.sagaStepExhausted(phase));
      if (u.status === 'exhausted') exhausted ??= `RETRY_EXHAUSTED: step ${row.name} (${phase}): ${u.lastError ?? ''}`;
      if (u.status === 'failed') failed ??= `step ${row.name} failed: ${u.lastError ?? ''}`;
      await client.query(
        `UPDATE ${this.#step}
            SET status = $3, attempts = $4, interval_ms = $5,
                next_attempt_at = COALESCE(to_timestamp($6::float8 / 1000), next_attempt_at),
                last_error = $7, result = COALESCE($8::jsonb, result), calls = calls + 1, owner = $9
          WHERE gid = $1 AND step = $2`,
        [saga.gid, row.step, u.status, u.attempts, u.intervalMs, u.nextAt, u.lastError, u.result === null ? null : JSON.stringify(u.result), this.#opts.id],
      );
    }

    if (exhausted !== undefined) {
      // Terminal: a step whose outcome is unknown after every retry is left for an operator, visibly.
      await this.#finish(client, saga.gid, 'exhausted', exhausted);
      events.push((m) => m.sagaFinished('exhausted'));
    } else if (failed !== undefined) {
      // Everything that ran, or may have run (an error answer leaves the outcome unknown), is undone;
      // steps never attempted are skipped.
      await client.query(
        `UPDATE ${this.#step}
            SET status = CASE WHEN status = 'done' OR calls > 0 THEN 'compensating' ELSE 'skipped' END,
                attempts = 0, interval_ms = 0, next_attempt_at = 'infinity'
          WHERE gid = $1 AND status IN ('done', 'pending')`,
        [saga.gid],
      );
      await client.query(`UPDATE ${this.#saga} SET status = 'compensating', last_error = $2 WHERE gid = $1`, [saga.gid, failed]);
    }
    if (exhausted === undefined) await this.#releaseNextStage(client, saga.gid, forward && failed === undefined);
    const left = await client.query<{ n: string }>(
      `SELECT count(*) AS n FROM ${this.#step} WHERE gid = $1 AND status IN ('pending', 'compensating', 'exhausted')`,
      [saga.gid],
    );
    if (exhausted === undefined && Number(left.rows[0]!.n) === 0) {
      const status = await client.query<{ status: SagaStatus }>(`SELECT status FROM ${this.#saga} WHERE gid = $1`, [saga.gid]);
      const end: SagaEnd = status.rows[0]!.status === 'running' ? 'committed' : 'compensated';
      await this.#finish(client, saga.gid, end, null);
      events.push((m) => m.sagaFinished(end));
    }
    return report;
  }

  /**
   * Makes the next stage due once the current one is through. Steps of later
   * stages wait with `next_attempt_at = infinity`, so a saga is only claimed
   * when it has work: forward, the lowest stage still pending; compensating,
   * the highest stage still to undo. While the current stage has rows left,
   * those rows are not at infinity and nothing changes.
   */
  async #releaseNextStage(client: pg.PoolClient, gid: string, forward: boolean): Promise<void> {
    const status: StepStatus = forward ? 'pending' : 'compensating';
    await client.query(
      `UPDATE ${this.#step} SET next_attempt_at = now()
        WHERE gid = $1 AND status = $2 AND next_attempt_at = 'infinity'
          AND stage = (SELECT ${forward ? 'min' : 'max'}(stage) FROM ${this.#step} WHERE gid = $1 AND status = $2)`,
      [gid, status],
    );
  }

  async #finish(client: pg.PoolClient, gid: string, status: SagaStatus, lastError: string | null): Promise<void> {
    await client.query(`UPDATE ${this.#saga} SET status = $2, last_error = COALESCE($3, last_error), finished_at = now() WHERE gid = $1`, [gid, status, lastError]);
  }

  async #inSavepoint(client: pg.PoolClient, run: () => Promise<StepResult | void>): Promise<StepResult> {
    await client.query('SAVEPOINT saga_step');
    const result = await runLocal(run);
    // A step that did not succeed leaves nothing behind, so its retry starts clean.
    await client.query(result.kind === 'success' ? 'RELEASE SAVEPOINT saga_step' : 'ROLLBACK TO SAVEPOINT saga_step');
    return result;
  }
}
