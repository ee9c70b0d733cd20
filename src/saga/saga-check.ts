/**
 * The integrity check of the saga, outbox and barrier logs (the daily
 * inspection `shardgate saga check` runs): each invariant the coordinator,
 * the relay and the barrier keep is one query that returns the rows breaking
 * it. The invariants and why each holds are listed in README.md ("Integrity
 * check"). The queries run in one REPEATABLE READ READ ONLY transaction: every
 * coordinator move, relay batch and barrier call is one transaction, so the
 * snapshot shows whole moves only and a live system checks clean.
 */
import type { Queryable } from '../library/shard-gate.js';
import { qualified } from './saga-schema.js';

/** One row that breaks an invariant. */
export interface CheckFinding {
  /** The invariant's name (README.md "Integrity check"). */
  readonly invariant: string;
  /** The table of the row. */
  readonly table: 'saga' | 'saga_step' | 'outbox' | 'barrier';
  /** The row: a gid, `gid step <name>`, an outbox id, or `gid branch op`. */
  readonly key: string;
  readonly detail: string;
}

/** What a check found, and how much it looked at. */
export interface CheckReport {
  readonly findings: readonly CheckFinding[];
  /** Rows read per table; a table that does not exist is absent. */
  readonly counted: Readonly<Partial<Record<CheckFinding['table'], number>>>;
  /** Invariants with more broken rows than `maxPerInvariant`, and how many there were. */
  readonly truncated: Readonly<Record<string, number>>;
}

interface Invariant {
  readonly name: string;
  readonly table: CheckFinding['table'];
  /** Selects `key` and `detail` of the breaking rows; `S`, `T`, `O`, `B` stand for the saga, step, outbox and barrier tables. */
  readonly sql: string;
}

const FINISHED = "('committed', 'compensated', 'exhausted', 'abandoned')";

/** Every invariant, by table. Changing one means changing README.md's list too. */
const INVARIANTS: readonly Invariant[] = [
  {
    name: 'finished-at-mismatch',
    table: 'saga',
    sql: `SELECT gid AS key, 'status ' || status || (CASE WHEN finished_at IS NULL THEN ' without' ELSE ' with' END) || ' finished_at' AS detail
            FROM S WHERE (status IN ${FINISHED}) <> (finished_at IS NOT NULL)`,
  },
  {
    name: 'saga-without-steps',
    table: 'saga',
    sql: `SELECT g.gid AS key, 'no step rows' AS detail FROM S g WHERE NOT EXISTS (SELECT 1 FROM T s WHERE s.gid = g.gid)`,
  },
  {
    name: 'committed-step-not-done',
    table: 'saga_step',
    sql: `SELECT s.gid || ' step ' || s.name AS key, 'saga committed, step ' || s.status AS detail
            FROM S g JOIN T s USING (gid) WHERE g.status = 'committed' AND s.status <> 'done'`,
  },
  {
    name: 'compensated-step-left',
    table: 'saga_step',
    sql: `SELECT s.gid || ' step ' || s.name AS key, 'saga compensated, step ' || s.status AS detail
            FROM S g JOIN T s USING (gid) WHERE g.status = 'compensated' AND s.status NOT IN ('compensated', 'skipped', 'failed')`,
  },
  {
    name: 'compensation-without-failure',
    table: 'saga',
    sql: `SELECT g.gid AS key, 'saga ' || g.status || ' but no step answered FAILURE' AS detail
            FROM S g WHERE g.status IN ('compensating', 'compensated') AND NOT EXISTS (SELECT 1 FROM T s WHERE s.gid = g.gid AND s.status = 'failed')`,
  },
  {
    name: 'running-step-backward',
    table: 'saga_step',
    sql: `SELECT s.gid || ' step ' || s.name AS key, 'saga running, step ' || s.status AS detail
            FROM S g JOIN T s USING (gid) WHERE g.status = 'running' AND s.status NOT IN ('pending', 'done')`,
  },
  {
    name: 'compensating-step-forward',
    table: 'saga_step',
    sql: `SELECT s.gid || ' step ' || s.name AS key, 'saga compensating, step ' || s.status AS detail
            FROM S g JOIN T s USING (gid) WHERE g.status = 'compensating' AND s.status IN ('pending', 'done', 'exhausted', 'abandoned')`,
  },
  {
    name: 'exhausted-without-step',
    table: 'saga',
    sql: `SELECT g.gid AS key, 'saga exhausted with no exhausted step' AS detail
            FROM S g WHERE g.status = 'exhausted' AND NOT EXISTS (SELECT 1 FROM T s WHERE s.gid = g.gid AND s.status = 'exhausted')
          UNION ALL
          SELECT g.gid, 'saga exhausted without a RETRY_EXHAUSTED last error' FROM S g WHERE g.status = 'exhausted' AND g.last_error NOT LIKE 'RETRY\\_EXHAUSTED: %'`,
  },
  {
    name: 'exhausted-step-in-moving-saga',
    table: 'saga_step',
    sql: `SELECT s.gid || ' step ' || s.name AS key, 'step exhausted, saga ' || g.status AS detail
            FROM S g JOIN T s USING (gid) WHERE s.status = 'exhausted' AND g.status NOT IN ('exhausted', 'abandoned')`,
  },
  {
    name: 'open-step-in-finished-saga',
    table: 'saga_step',
    sql: `SELECT s.gid || ' step ' || s.name AS key, 'saga ' || g.status || ', step still ' || s.status AS detail
            FROM S g JOIN T s USING (gid) WHERE g.status IN ${FINISHED} AND s.status IN ('pending', 'compensating') AND g.status <> 'exhausted'`,
  },
  {
    name: 'stage-order',
    table: 'saga_step',
    sql: `SELECT a.gid || ' step ' || a.name AS key, 'stage ' || a.stage || ' attempted while step ' || b.name || ' of stage ' || b.stage || ' is ' || b.status AS detail
            FROM T a JOIN T b ON b.gid = a.gid AND b.stage < a.stage
           WHERE a.calls > 0 AND b.status <> 'done'
             AND NOT EXISTS (SELECT 1 FROM T f WHERE f.gid = a.gid AND f.status = 'failed')`,
  },
  {
    name: 'compensation-order',
    table: 'saga_step',
    sql: `SELECT a.gid || ' step ' || a.name AS key, 'compensated while step ' || b.name || ' of the later stage ' || b.stage || ' is ' || b.status AS detail
            FROM T a JOIN T b ON b.gid = a.gid AND b.stage > a.stage
           WHERE a.status = 'compensated' AND b.status IN ('compensating', 'done', 'exhausted')`,
  },
  {
    name: 'compensation-without-action',
    table: 'saga_step',
    sql: `SELECT gid || ' step ' || name AS key, 'step ' || status || ' with ' || calls || ' calls: its action never ran' AS detail
            FROM T WHERE (status = 'compensating' AND calls < 1) OR (status = 'compensated' AND calls < 2)`,
  },
  {
    name: 'outcome-without-call',
    table: 'saga_step',
    sql: `SELECT gid || ' step ' || name AS key, 'step ' || status || ' but never called' AS detail FROM T WHERE status IN ('done', 'failed', 'exhausted') AND calls = 0`,
  },
  {
    name: 'attempts-over-cap',
    table: 'saga_step',
    sql: `SELECT s.gid || ' step ' || s.name AS key, s.attempts || ' failed attempts of at most ' || g.max_attempts || ', step ' || s.status AS detail
            FROM S g JOIN T s USING (gid)
           WHERE s.attempts > g.max_attempts OR (s.attempts >= g.max_attempts AND s.status <> 'exhausted')`,
  },
  {
    name: 'attempts-over-calls',
    table: 'saga_step',
    sql: `SELECT gid || ' step ' || name AS key, attempts || ' failed attempts in ' || calls || ' calls' AS detail FROM T WHERE attempts > calls`,
  },
  {
    name: 'sent-without-ack',
    table: 'outbox',
    sql: `SELECT id AS key, 'sent with ' || attempts || ' attempts' || COALESCE(' and the error ' || last_error, '') AS detail
            FROM O WHERE sent_at IS NOT NULL AND (attempts < 1 OR last_error IS NOT NULL)`,
  },
  {
    name: 'sent-not-ready',
    table: 'outbox',
    sql: `SELECT id AS key, 'sent while ' || state AS detail FROM O WHERE sent_at IS NOT NULL AND state <> 'ready'`,
  },
  {
    name: 'sent-before-written',
    table: 'outbox',
    sql: `SELECT id AS key, 'sent at ' || sent_at || ', written at ' || created_at AS detail FROM O WHERE sent_at < created_at`,
  },
  {
    name: 'fence-written-by-other-op',
    table: 'barrier',
    sql: `SELECT gid || ' ' || branch_id || ' ' || op AS key, 'written by ' || written_by AS detail
            FROM B WHERE op <> written_by AND NOT (op = 'try' AND written_by = 'cancel')`,
  },
  {
    name: 'cancel-without-try-fence',
    table: 'barrier',
    sql: `SELECT c.gid || ' ' || c.branch_id || ' cancel' AS key, 'no try fence (a cancel writes it first, in its own transaction)' AS detail
            FROM B c WHERE c.op = 'cancel' AND NOT EXISTS (SELECT 1 FROM B t WHERE t.gid = c.gid AND t.branch_id = c.branch_id AND t.op = 'try')`,
  },
  {
    name: 'confirmed-and-cancelled',
    table: 'barrier',
    sql: `SELECT c.gid || ' ' || c.branch_id || ' confirm' AS key, 'the branch was confirmed and also cancelled' AS detail
            FROM B c JOIN B x ON x.gid = c.gid AND x.branch_id = c.branch_id AND x.op = 'cancel' WHERE c.op = 'confirm'`,
  },
  {
    name: 'confirm-without-try',
    table: 'barrier',
    sql: `SELECT c.gid || ' ' || c.branch_id || ' confirm' AS key,
                 CASE WHEN t.gid IS NULL THEN 'no try fence' ELSE 'the try fence was written by a cancel: try never ran' END AS detail
            FROM B c LEFT JOIN B t ON t.gid = c.gid AND t.branch_id = c.branch_id AND t.op = 'try'
           WHERE c.op = 'confirm' AND (t.gid IS NULL OR t.written_by <> 'try')`,
  },
];

/**
 * Only when the participants' fences use saga gids (a saga step calling a TCC
 * participant passes its own gid, and the barrier shares the saga log's
 * schema): a fence whose gid is no saga's. The saga must outlive its fences,
 * which the shared cleanup gives (a fence is written before its saga finishes,
 * and both are kept for the same retention).
 */
const UNKNOWN_GID: Invariant = {
  name: 'barrier-unknown-gid',
  table: 'barrier',
  sql: `SELECT b.gid || ' ' || b.branch_id || ' ' || b.op AS key, 'no saga has this gid' AS detail
          FROM B b WHERE NOT EXISTS (SELECT 1 FROM S g WHERE g.gid = b.gid)`,
};

const TABLE_OF: Readonly<Record<string, CheckFinding['table']>> = { S: 'saga', T: 'saga_step', O: 'outbox', B: 'barrier' };

/** The invariant names, in the order they are checked (`barrier-unknown-gid` last, only when asked for). */
export const CHECK_INVARIANTS: readonly string[] = [...INVARIANTS, UNKNOWN_GID].map((i) => i.name);

/**
 * Checks every invariant of the logs in `schema` through `client` (outside a
 * transaction: the check opens its own read-only snapshot). Tables that do not
 * exist are skipped (a database with sagas but no outbox checks its sagas).
 * At most `maxPerInvariant` rows are reported per invariant; the rest are counted.
 * `barrierGidsAreSagaGids` adds `barrier-unknown-gid`.
 */
export async function checkSagaLogs(client: Queryable, opts: { schema?: string; maxPerInvariant?: number; barrierGidsAreSagaGids?: boolean } = {}): Promise<CheckReport> {
  const max = opts.maxPerInvariant ?? 100;
  const findings: CheckFinding[] = [];
  const counted: Partial<Record<CheckFinding['table'], number>> = {};
  const truncated: Record<string, number> = {};
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    const names = Object.fromEntries(Object.entries(TABLE_OF).map(([letter, table]) => [letter, qualified(opts.schema, table)]));
    const present = new Set<string>();
    for (const [letter, name] of Object.entries(names)) {
      const exists = await client.query<{ n: string | null }>('SELECT CASE WHEN to_regclass($1) IS NULL THEN NULL ELSE 1 END AS n', [name]);
      if (exists.rows[0]!.n === null) continue;
      present.add(letter);
      counted[TABLE_OF[letter]!] = Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${name}`)).rows[0]!.n);
    }
    for (const inv of opts.barrierGidsAreSagaGids === true ? [...INVARIANTS, UNKNOWN_GID] : INVARIANTS) {
      const letters = [...new Set(inv.sql.match(/\b[STOB]\b/g) ?? [])];
      if (!letters.every((l) => present.has(l))) continue;
      // The letters stand alone as table names (\b…\b); quoted names replace them, never user input.
      const sql = inv.sql.replace(/\b([STOB])\b/g, (_, l: string) => names[l]!);
      const rows = (await client.query<{ key: string; detail: string }>(`SELECT key, detail FROM (${sql}) found ORDER BY key LIMIT $1`, [max + 1])).rows;
      if (rows.length > max) {
        const all = await client.query<{ n: string }>(`SELECT count(*) AS n FROM (${sql}) found`);
        truncated[inv.name] = Number(all.rows[0]!.n);
      }
      for (const r of rows.slice(0, max)) findings.push({ invariant: inv.name, table: inv.table, key: r.key, detail: r.detail });
    }
  } finally {
    await client.query('ROLLBACK');
  }
  return { findings, counted, truncated };
}
