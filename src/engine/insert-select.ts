import type { ShardName } from '../config/names.js';
import { sgError } from '../errors/index.js';
import type { InsertSelectPlan, ShardStatement } from '../planner/plan.js';
import type { FieldDescription, RawRow } from '../protocol/fields.js';
import { combineErrors } from './combine-errors.js';
import { mergedFields, mergeStreams } from './merge/merge-streams.js';
import { shardQuery } from './run-shards.js';
import type { ClientStatement, ExecEvent } from './session-api.js';
import type { ShardCursor, ShardQuery } from './shard-cursor.js';
import { shardTextRules, specComparesValues } from './shard-text-rules.js';

/** What moving rows needs from the session. */
export interface InsertSelectContext {
  /** The shard's connection in the statement's transaction; `write` marks the shard written. */
  readonly connection: (shard: ShardName, write: boolean) => Promise<ShardCursor>;
  /** Connections with a statement in flight, for cancel(). */
  readonly running: Set<ShardCursor>;
  /** The shard owning a row with this key text (the planner's rule). */
  readonly route: (keyText: string | null) => ShardName;
  /** A cursor name not used elsewhere in the session. */
  readonly cursorName: () => string;
}

/** Rows read per FETCH from each source shard. */
const FETCH_ROWS = 500;
/** Most rows per INSERT statement. */
const INSERT_ROWS = 500;
/** PostgreSQL's limit on parameters per statement (a 16-bit count in Bind). */
const MAX_PARAMS = 65_535;
/** OIDs below this are built-in types, the same on every shard; others (enums, domains …) differ per shard. */
const FIRST_NORMAL_OID = 16_384;

/** The type OID to declare for a value sent to any shard: a built-in type's own, else 0 (unspecified: the shard infers it). */
export function portableTypeOid(oid: number): number {
  return oid < FIRST_NORMAL_OID ? oid : 0;
}

/**
 * Runs an InsertSelectPlan inside the caller's transaction and yields its
 * command tag (`INSERT 0 n`, n summed over the shards' answers):
 * 1. the source SELECT is opened as a cursor on each of its shards before
 *    anything is inserted, so (as on one server) the rows it reads are those
 *    of the statement's start, never the rows it inserts;
 * 2. rows are fetched in batches, merged by the source's MergeSpec when it
 *    has one, grouped by the shard their key routes to, and inserted there
 *    with multi-row INSERTs (at most 500 rows each, values as parameters).
 * Memory holds about one batch per source shard plus one INSERT per shard.
 * Statements on one connection never overlap: fetches and inserts on a shard
 * that is both read and written take turns.
 */
export async function* insertSelectEvents(
  plan: InsertSelectPlan,
  stmt: ClientStatement,
  params: readonly (string | null | undefined)[],
  ctx: InsertSelectContext,
): AsyncGenerator<ExecEvent, void, undefined> {
  const turns = new Turns();
  if (plan.source.writes) {
    yield* movedByWrite(plan, stmt, ctx, turns);
    return;
  }
  const spec = plan.source.merge;
  const text = spec !== null && specComparesValues(spec) ? await shardTextRules(await Promise.all(plan.source.statements.map((s) => ctx.connection(s.shard, false)))) : undefined;
  const cursors = await Promise.all(plan.source.statements.map((s) => openCursor(s, stmt, ctx)));
  const run = (conn: ShardCursor, q: ShardQuery): Promise<Collected> => turns.take(conn.shard, () => collect(conn, q, ctx.running));
  // The first batch of every cursor: it carries the column descriptions.
  const firsts = await settleAll(cursors.map((c) => run(c.conn, { sql: `FETCH ${FETCH_ROWS} FROM ${c.name}` })));
  const sourceFields = firsts.find((f) => f.fields !== null)?.fields ?? null;
  let inserted = 0;
  if (sourceFields !== null) {
    const fields = spec === null ? sourceFields : mergedFields(sourceFields, spec);
    if (fields.length <= plan.keyIndex) throw sgError('syntaxError', { message: 'INSERT has more target columns than expressions' });
    const inputs = cursors.map((c, i) => fetchAll(c, firsts[i]!.rows, run));
    const rows = spec === null ? concatenate(inputs) : mergeStreams(inputs, sourceFields, spec, params, text === undefined ? {} : { text });
    const writer = new ShardWriter(plan, fields, ctx, run);
    for await (const batch of rows) inserted += await writer.write(batch);
  }
  await Promise.all(cursors.map((c) => run(c.conn, { sql: `CLOSE ${c.name}` })));
  yield { kind: 'complete', tag: `INSERT 0 ${inserted}` };
}

/**
 * The source is a data-modifying WITH (`WITH m AS (DELETE … RETURNING …)
 * SELECT … FROM m`), which PostgreSQL does not allow in a cursor: each
 * shard's statement runs to its end (its shard marked written), all of them
 * before anything is inserted, and the rows they returned are inserted where
 * their keys belong. The returned rows are held in memory until then.
 */
async function* movedByWrite(plan: InsertSelectPlan, stmt: ClientStatement, ctx: InsertSelectContext, turns: Turns): AsyncGenerator<ExecEvent, void, undefined> {
  const results = await settleAll(
    plan.source.statements.map(async (s) => {
      const conn = await ctx.connection(s.shard, true);
      return turns.take(conn.shard, () => collect(conn, shardQuery(s, stmt, [0]), ctx.running));
    }),
  );
  const fields = results.find((r) => r.fields !== null)?.fields ?? null;
  let inserted = 0;
  if (fields !== null) {
    if (fields.length <= plan.keyIndex) throw sgError('syntaxError', { message: 'INSERT has more target columns than expressions' });
    const writer = new ShardWriter(plan, fields, ctx, (conn, q) => turns.take(conn.shard, () => collect(conn, q, ctx.running)));
    for (const r of results) if (r.rows.length > 0) inserted += await writer.write(r.rows);
  }
  yield { kind: 'complete', tag: `INSERT 0 ${inserted}` };
}

interface Cursor {
  readonly conn: ShardCursor;
  readonly name: string;
}

interface Collected {
  fields: readonly FieldDescription[] | null;
  readonly rows: RawRow[];
  tag: string;
}

async function openCursor(s: ShardStatement, stmt: ClientStatement, ctx: InsertSelectContext): Promise<Cursor> {
  const conn = await ctx.connection(s.shard, false);
  const name = ctx.cursorName();
  const q = shardQuery(s, stmt, undefined);
  await collect(conn, { ...q, sql: `DECLARE ${name} NO SCROLL CURSOR FOR ${s.sql}` }, ctx.running);
  return { conn, name };
}

/** Runs one statement to its end and keeps what it returned. */
async function collect(conn: ShardCursor, q: ShardQuery, running: Set<ShardCursor>): Promise<Collected> {
  const out: Collected = { fields: null, rows: [], tag: '' };
  running.add(conn);
  try {
    for await (const ev of conn.query(q)) {
      if (ev.kind === 'fields') out.fields = ev.fields;
      else if (ev.kind === 'rows') for (const r of ev.rows) out.rows.push(r);
      else if (ev.kind === 'complete') out.tag = ev.tag;
    }
  } finally {
    running.delete(conn);
  }
  return out;
}

/** Awaits every promise; failures of several shards become one error naming each. */
async function settleAll<T>(promises: readonly Promise<T>[]): Promise<T[]> {
  const settled = await Promise.allSettled(promises);
  const failed = settled.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
  if (failed.length > 0) throw combineErrors(failed);
  return settled.map((r) => (r as PromiseFulfilledResult<T>).value);
}

/** A cursor's rows, batch by batch, starting with the batch already fetched. */
async function* fetchAll(c: Cursor, first: RawRow[], run: (conn: ShardCursor, q: ShardQuery) => Promise<Collected>): AsyncGenerator<readonly RawRow[], void, undefined> {
  let batch = first;
  while (batch.length > 0) {
    yield batch;
    if (batch.length < FETCH_ROWS) return;
    batch = (await run(c.conn, { sql: `FETCH ${FETCH_ROWS} FROM ${c.name}` })).rows;
  }
}

async function* concatenate(inputs: readonly AsyncIterable<readonly RawRow[]>[]): AsyncGenerator<readonly RawRow[], void, undefined> {
  for (const input of inputs) yield* input;
}

/** Groups rows by the shard of their key and inserts them there in multi-row statements. */
class ShardWriter {
  readonly #plan: InsertSelectPlan;
  readonly #ctx: InsertSelectContext;
  readonly #run: (conn: ShardCursor, q: ShardQuery) => Promise<Collected>;
  readonly #width: number;
  readonly #types: readonly number[];
  readonly #rowsPerInsert: number;
  /** Statement text by row count (most batches are full). */
  readonly #sql = new Map<number, string>();

  constructor(plan: InsertSelectPlan, fields: readonly FieldDescription[], ctx: InsertSelectContext, run: (conn: ShardCursor, q: ShardQuery) => Promise<Collected>) {
    this.#plan = plan;
    this.#ctx = ctx;
    this.#run = run;
    this.#width = fields.length;
    this.#types = fields.map((f) => portableTypeOid(f.typeOid));
    this.#rowsPerInsert = Math.max(1, Math.min(INSERT_ROWS, Math.floor(MAX_PARAMS / Math.max(1, this.#width))));
  }

  /** Inserts one batch of source rows; resolves with the number of rows the shards inserted. */
  async write(rows: readonly RawRow[]): Promise<number> {
    const byShard = new Map<ShardName, RawRow[]>();
    for (const row of rows) {
      const key = row[this.#plan.keyIndex];
      const shard = this.#ctx.route(key === null || key === undefined ? null : key.toString('utf8'));
      let list = byShard.get(shard);
      if (list === undefined) byShard.set(shard, (list = []));
      list.push(row);
    }
    const counts = await settleAll([...byShard].map(([shard, list]) => this.#insert(shard, list)));
    return counts.reduce((a, b) => a + b, 0);
  }

  async #insert(shard: ShardName, rows: readonly RawRow[]): Promise<number> {
    const conn = await this.#ctx.connection(shard, true);
    let count = 0;
    for (let at = 0; at < rows.length; at += this.#rowsPerInsert) {
      const chunk = rows.slice(at, at + this.#rowsPerInsert);
      const params: (Buffer | null)[] = [];
      for (const row of chunk) for (let i = 0; i < this.#width; i++) params.push(row[i] ?? null);
      const done = await this.#run(conn, {
        sql: this.#statement(chunk.length),
        params,
        paramFormats: [0],
        paramTypes: chunk.flatMap(() => this.#types),
      });
      count += Number(/^INSERT \d+ (\d+)$/.exec(done.tag)?.[1] ?? 0);
    }
    return count;
  }

  /** `head ($1, $2), ($3, $4) suffix` for `rows` rows. */
  #statement(rows: number): string {
    let sql = this.#sql.get(rows);
    if (sql === undefined) {
      const tuples: string[] = [];
      for (let r = 0; r < rows; r++) tuples.push(`(${Array.from({ length: this.#width }, (_, i) => `$${r * this.#width + i + 1}`).join(', ')})`);
      sql = `${this.#plan.insertSql}${tuples.join(', ')}${this.#plan.insertSuffix}`;
      if (this.#sql.size >= 8) this.#sql.clear();
      this.#sql.set(rows, sql);
    }
    return sql;
  }
}

/**
 * One statement at a time per shard: a fetch from a shard's cursor and an
 * insert on the same shard's connection wait for each other.
 */
class Turns {
  readonly #tails = new Map<ShardName, Promise<unknown>>();

  take<T>(shard: ShardName, fn: () => Promise<T>): Promise<T> {
    // A stored tail never rejects: a failed statement does not stop the next one from starting.
    const result = (this.#tails.get(shard) ?? Promise.resolve()).then(fn);
    this.#tails.set(
      shard,
      result.catch(() => undefined),
    );
    return result;
  }
}
