/**
 * The saga log as the admin API sees it: listing sagas that are moving or
 * waiting for an operator, and the two operator actions, retry (an exhausted
 * saga goes back to due) and abandon (a saga ends as `abandoned`, visibly).
 * Each action is one transaction holding the saga's row lock, the same lock a
 * coordinator's move holds, so an action and a move never interleave.
 */
import type pg from 'pg';
import type { SagaAdminSource, SagaListStatus, SagaSummary } from '../admin/admin-source.js';
import { sgError } from '../errors/catalogue.js';
import type { Metrics } from '../observe/metrics.js';
import { inTransactionClient, qualified } from './saga-schema.js';

/** Options of `new SagaAdmin()`. */
export interface SagaAdminOptions {
  /** Connections to the saga database. */
  readonly pool: pg.Pool;
  readonly schema?: string;
  /** Counts abandoned sagas (`shardgate_saga_finished_total{status="abandoned"}`). */
  readonly metrics?: Metrics;
}

interface SagaRow {
  gid: string;
  definition: string;
  mode: string | null;
  status: string;
  started_at: Date;
  age: number;
  last_error: string | null;
}

interface StepRow {
  gid: string;
  name: string;
  stage: number;
  status: string;
  attempts: number;
  calls: number;
  next_attempt_at: Date | null;
  last_error: string | null;
}

/** The admin API's view of the saga log (implements admin/'s SagaAdminSource). */
export class SagaAdmin implements SagaAdminSource {
  readonly #opts: SagaAdminOptions;
  readonly #saga: string;
  readonly #step: string;

  constructor(opts: SagaAdminOptions) {
    this.#opts = opts;
    this.#saga = qualified(opts.schema, 'saga');
    this.#step = qualified(opts.schema, 'saga_step');
  }

  async list(statuses: readonly SagaListStatus[], limit: number): Promise<readonly SagaSummary[]> {
    return this.#summaries(this.#opts.pool, `status = ANY($1::text[]) ORDER BY started_at LIMIT $2`, [statuses, limit]);
  }

  /**
   * Puts an exhausted saga back to due, with its attempt counts at zero and
   * its deadline counted from now. If a step of it was refused (a FAILURE
   * answer, possibly in the same stage as the exhausted step), the saga
   * compensates: the exhausted step's outcome is unknown, so it is undone
   * with the others. Otherwise its exhausted steps run again forward with the
   * same idempotency keys, so a participant that did apply an attempt dedupes
   * the next one.
   */
  async retry(gid: string): Promise<SagaSummary> {
    return this.#locked(gid, async (client, status) => {
      if (status !== 'exhausted') throw sgError('sagaNotRetryable', { gid, status });
      const refused = await client.query<{ reason: string }>(
        `SELECT 'step ' || name || ' failed: ' || COALESCE(last_error, '') AS reason FROM ${this.#step} WHERE gid = $1 AND status = 'failed' ORDER BY step LIMIT 1`,
        [gid],
      );
      const reason = refused.rows[0]?.reason;
      if (reason === undefined) {
        await client.query(
          `UPDATE ${this.#step} SET status = 'pending', attempts = 0, interval_ms = 0, next_attempt_at = now() WHERE gid = $1 AND status = 'exhausted'`,
          [gid],
        );
      } else {
        // As the coordinator does on a FAILURE: what ran or may have run is undone, what never ran is skipped,
        // all waiting, then the highest stage is released.
        await client.query(
          `UPDATE ${this.#step}
              SET status = CASE WHEN status IN ('done', 'exhausted') OR calls > 0 THEN 'compensating' ELSE 'skipped' END,
                  attempts = 0, interval_ms = 0, next_attempt_at = 'infinity'
            WHERE gid = $1 AND status IN ('done', 'pending', 'exhausted')`,
          [gid],
        );
        await client.query(
          `UPDATE ${this.#step} SET next_attempt_at = now()
            WHERE gid = $1 AND status = 'compensating'
              AND stage = (SELECT max(stage) FROM ${this.#step} WHERE gid = $1 AND status = 'compensating')`,
          [gid],
        );
      }
      await client.query(
        `UPDATE ${this.#saga} SET status = $2, last_error = $3, finished_at = NULL, retried_at = now() WHERE gid = $1`,
        [gid, reason === undefined ? 'running' : 'compensating', reason ?? null],
      );
    });
  }

  /**
   * Ends a saga that has not finished as `abandoned`: its waiting steps are
   * marked abandoned (exhausted ones keep their status and last error) and no
   * coordinator touches it again. Nothing is compensated: an operator who
   * abandons a saga takes over whatever its participants hold.
   */
  async abandon(gid: string): Promise<SagaSummary> {
    let ended = false;
    const summary = await this.#locked(gid, async (client, status) => {
      if (status !== 'running' && status !== 'compensating' && status !== 'exhausted') throw sgError('sagaAlreadyFinished', { gid, status });
      await client.query(
        `UPDATE ${this.#step} SET status = 'abandoned', next_attempt_at = 'infinity' WHERE gid = $1 AND status IN ('pending', 'compensating')`,
        [gid],
      );
      await client.query(
        `UPDATE ${this.#saga}
            SET status = 'abandoned', finished_at = now(),
                last_error = 'ABANDONED by an operator while ' || status || COALESCE(': ' || last_error, '')
          WHERE gid = $1`,
        [gid],
      );
      ended = true;
    });
    if (ended) this.#opts.metrics?.sagaFinished('abandoned');
    return summary;
  }

  /**
   * Runs `change` in a transaction holding the saga's row lock, taken with
   * NOWAIT: a coordinator in the middle of a move holds it (possibly for an
   * HTTP call's timeout), and an operator is better told so (55P03) than kept
   * waiting. Commits and returns the saga as it now is.
   */
  async #locked(gid: string, change: (client: pg.PoolClient, status: string) => Promise<void>): Promise<SagaSummary> {
    return inTransactionClient(this.#opts.pool, async (client) => {
      await client.query('BEGIN');
      let row: { status: string } | undefined;
      try {
        row = (await client.query<{ status: string }>(`SELECT status FROM ${this.#saga} WHERE gid = $1 FOR UPDATE NOWAIT`, [gid])).rows[0];
      } catch (err) {
        if ((err as { code?: string }).code === '55P03') throw sgError('sagaBusy', { gid });
        throw err;
      }
      if (row === undefined) throw sgError('sagaNotFound', { gid });
      await change(client, row.status);
      const [summary] = await this.#summaries(client, 'gid = $1', [gid]);
      await client.query('COMMIT');
      return summary!;
    });
  }

  async #summaries(client: pg.Pool | pg.PoolClient, where: string, params: unknown[]): Promise<SagaSummary[]> {
    const sagas = (
      await client.query<SagaRow>(
        `SELECT gid, definition, mode, status, started_at, extract(epoch FROM now() - started_at)::float8 AS age, last_error FROM ${this.#saga} WHERE ${where}`,
        params,
      )
    ).rows;
    if (sagas.length === 0) return [];
    const steps = (
      await client.query<StepRow>(
        `SELECT gid, name, stage, status, attempts, calls, last_error,
                CASE WHEN status IN ('pending', 'compensating') AND next_attempt_at <> 'infinity' THEN next_attempt_at END AS next_attempt_at
           FROM ${this.#step} WHERE gid = ANY($1::text[]) ORDER BY gid, step`,
        [sagas.map((s) => s.gid)],
      )
    ).rows;
    const bySaga = new Map<string, StepRow[]>();
    for (const t of steps) bySaga.set(t.gid, [...(bySaga.get(t.gid) ?? []), t]);
    return sagas.map((s) => ({
      gid: s.gid,
      definition: s.definition,
      mode: s.mode,
      status: s.status,
      startedAt: s.started_at.toISOString(),
      ageSeconds: s.age,
      lastError: s.last_error,
      steps: (bySaga.get(s.gid) ?? []).map((t) => ({
        name: t.name,
        stage: t.stage,
        status: t.status,
        attempts: t.attempts,
        calls: t.calls,
        nextAttemptAt: t.next_attempt_at?.toISOString() ?? null,
        lastError: t.last_error,
      })),
    }));
  }
}
