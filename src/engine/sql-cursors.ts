import type { ShardName } from '../config/names.js';
import { sgError } from '../errors/catalogue.js';
import type { DeclarePlan, FetchPlan, MergeSpec, ShardsPlan } from '../planner/plan.js';
import { hasCombinedExpressions } from '../planner/plan.js';
import type { FieldDescription, RawRow } from '../protocol/fields.js';
import { breaksConnection, combineErrors } from './combine-errors.js';
import { mergedFields, mergeStreams } from './merge/merge-streams.js';
import { shardQuery } from './run-shards.js';
import type { ClientStatement, ExecEvent } from './session-api.js';
import type { CursorView } from './session-views.js';
import type { ShardCursor, StatementDescription } from './shard-cursor.js';
import { shardTextRules, specComparesValues } from './shard-text-rules.js';
import type { TxScope } from './tx-scope.js';
import { TEXT_AS_BYTES } from './values.js';

/** Rows a cursor over several shards fetches from each shard at a time: memory is bounded by shards × this. */
const FETCH_BATCH = 1000;

/** What the cursors need from their session. */
export interface CursorHost {
  /** The shard's connection in the transaction (a reading participant). */
  participant(scope: TxScope, shard: ShardName): Promise<ShardCursor>;
  /** Outside a transaction: a connection with the session's settings applied, kept by the cursor until it closes. */
  acquire(shard: ShardName): Promise<ShardCursor>;
  /** Applies the session's current settings to a kept connection before it is used again. */
  refresh(conn: ShardCursor): Promise<void>;
  /** Records that the shards' branches hold a cursor WITH HOLD (they cannot PREPARE); throws 0A000 when that breaks the transaction's commit. */
  noteHold(scope: TxScope, shards: readonly ShardName[]): void;
  /** True for an embedded shard (one session: a connection kept past its transaction would hold it for every client). */
  embedded(shard: ShardName): boolean;
  readonly running: Set<ShardCursor>;
}

/** A cursor's piece on one shard: the connection and the cursor's name there. */
interface CursorPart {
  readonly conn: ShardCursor;
  readonly remote: string;
}

/** One SQL cursor of the session. */
interface OpenCursor {
  readonly name: string;
  readonly hold: boolean;
  readonly parts: readonly CursorPart[];
  /** The transaction it was declared in; null once it outlives it (WITH HOLD) or when declared outside one. */
  scope: TxScope | null;
  /** Savepoints open when it was declared: ROLLBACK TO one of them closes it. */
  readonly depth: number;
  /** Set for a cursor over several shards, read forward through the merge. */
  readonly merged: MergedCursor | null;
  /** What pg_cursors shows of it. */
  readonly statement: string;
  readonly binary: boolean;
  readonly scroll: DeclarePlan['scroll'];
  readonly created: Date;
}

/**
 * The SQL cursors of one client session (`DECLARE`, `FETCH`, `MOVE`,
 * `CLOSE`). A cursor whose query routes to one shard is that shard's own
 * cursor, opened on the transaction's connection there: every FETCH
 * direction PostgreSQL allows for it works, with PostgreSQL's answers. A
 * cursor over several shards is one NO SCROLL cursor per shard, read
 * `FETCH_BATCH` rows at a time and merged as the query's merge plan says
 * (ORDER BY, aggregates, DISTINCT, LIMIT), forward only.
 *
 * Lifetimes follow PostgreSQL: a cursor WITHOUT HOLD ends with its
 * transaction; one WITH HOLD survives COMMIT — the transaction hands its
 * connections to the cursor (`keepAfterCommit`) instead of the pool, and
 * they return to the pool when the last cursor on them closes — and ends at
 * ROLLBACK of the transaction that declared it; ROLLBACK TO a savepoint
 * closes the cursors declared after it. Shard-side names are the session's
 * own (`sg_cursor_N`), so a client's name never meets another's.
 */
export class SqlCursors {
  readonly #host: CursorHost;
  readonly #open = new Map<string, OpenCursor>();
  /** Connections a committed transaction handed over for its WITH HOLD cursors. */
  readonly #kept = new Set<ShardCursor>();
  #count = 0;

  constructor(host: CursorHost) {
    this.#host = host;
  }

  async *declare(plan: DeclarePlan, stmt: ClientStatement, params: readonly (string | null | undefined)[], scope: TxScope | null): AsyncGenerator<ExecEvent, void, undefined> {
    const query = plan.query;
    if (query.kind === 'refuse') throw query.error;
    // Expressions over aggregates are evaluated on the final step, which a cursor does not run (the streaming merge refuses them).
    if (query.kind !== 'shards' || query.writes || (query.merge !== null && hasCombinedExpressions(query.merge))) {
      throw sgError('unsupportedCrossShard', {
        reason: 'a cursor over this query (it needs intermediate results computed by ShardGate)',
        hint: 'Declare cursors over queries that one shard answers, or that merge as a stream (ORDER BY, GROUP BY, count/sum/min/max/avg, DISTINCT, LIMIT).',
      });
    }
    // PostgreSQL asks for a transaction block before it looks at the name.
    if (!plan.hold && scope === null) throw sgError('noTransactionBlock', { command: 'DECLARE CURSOR' });
    if (this.#open.has(plan.name)) throw sgError('duplicateCursor', { name: plan.name });
    const shards = query.statements.map((s) => s.shard);
    const merged = query.statements.length > 1 || query.merge !== null;
    if (merged && plan.scroll === 'scroll') {
      throw sgError('unsupportedCrossShard', { reason: 'a SCROLL cursor over several shards', hint: 'Declare it NO SCROLL (forward FETCH and MOVE work), or filter the query by the sharding key.' });
    }
    if (merged && plan.binary) {
      throw sgError('unsupportedCrossShard', { reason: 'a BINARY cursor over several shards', hint: 'Declare it without BINARY, or filter the query by the sharding key.' });
    }
    if (plan.hold) {
      const embedded = shards.find((s) => this.#host.embedded(s));
      if (embedded !== undefined) {
        throw sgError('featureNotSupported', { feature: `a cursor WITH HOLD on embedded shard ${embedded}`, hint: 'An embedded shard is one session; declare the cursor WITHOUT HOLD inside a transaction.' });
      }
      if (scope !== null) this.#host.noteHold(scope, shards);
    }
    const parts = await this.#openParts(plan, query, stmt, merged, scope);
    const cursor: OpenCursor = {
      name: plan.name,
      hold: plan.hold,
      parts,
      scope,
      depth: scope?.depth ?? 0,
      merged: merged ? new MergedCursor(parts, query.merge, params, this.#host.running) : null,
      statement: stmt.sql,
      binary: plan.binary,
      scroll: plan.scroll,
      created: new Date(),
    };
    this.#open.set(plan.name, cursor);
    yield { kind: 'complete', tag: 'DECLARE CURSOR' };
  }

  /** DECLARE on each shard of the query, on the transaction's connections, or on connections kept for the cursor outside one. */
  async #openParts(plan: DeclarePlan, query: ShardsPlan, stmt: ClientStatement, merged: boolean, scope: TxScope | null): Promise<CursorPart[]> {
    const options = merged ? ' NO SCROLL' : `${plan.binary ? ' BINARY' : ''}${plan.scroll === 'scroll' ? ' SCROLL' : plan.scroll === 'noScroll' ? ' NO SCROLL' : ''}`;
    const settled = await Promise.allSettled(
      query.statements.map(async (s) => {
        const conn = scope === null ? await this.#host.acquire(s.shard) : await this.#host.participant(scope, s.shard);
        const remote = `sg_cursor_${++this.#count}`;
        const q = shardQuery(s, stmt, undefined);
        try {
          await drain(conn, { ...q, sql: `DECLARE ${remote}${options} CURSOR${plan.hold ? ' WITH HOLD' : ''} FOR ${s.sql}`, cache: false }, this.#host.running);
        } catch (err) {
          if (scope === null) conn.release(breaksConnection(err));
          throw err;
        }
        if (scope === null) this.#kept.add(conn);
        else if (plan.hold) scope.tx.keepAfterCommit(s.shard, (kept) => this.#kept.add(kept));
        return { conn, remote };
      }),
    );
    const failed = settled.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    const opened = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    if (failed.length > 0) {
      // Outside a transaction the shards that did open it keep a cursor nobody will close: their connections are closed.
      if (scope === null) for (const p of opened) this.#let(p.conn, true);
      throw combineErrors(failed.map((r) => r.reason as unknown));
    }
    return opened;
  }

  async *fetch(plan: FetchPlan, stmt: ClientStatement): AsyncGenerator<ExecEvent, void, undefined> {
    const cursor = this.#get(plan.name);
    const word = plan.move ? 'MOVE' : 'FETCH';
    try {
      if (cursor.merged !== null) {
        if (plan.direction !== 'forward' || (plan.count !== null && plan.count <= 0)) throw sgError('cursorForwardOnly');
        if (!plan.move) yield { kind: 'fields', fields: await cursor.merged.fields() };
        let count = 0;
        for await (const rows of cursor.merged.read(plan.count)) {
          count += rows.length;
          if (!plan.move) yield { kind: 'rows', rows };
        }
        yield { kind: 'complete', tag: `${word} ${count}` };
        return;
      }
      const part = cursor.parts[0]!;
      if (cursor.scope === null) await this.#host.refresh(part.conn);
      yield* stream(part.conn, { sql: `${word} ${fetchWords(plan)} FROM ${part.remote}`, cache: false, ...(stmt.resultFormats ? { resultFormats: stmt.resultFormats } : {}) }, this.#host.running);
    } catch (err) {
      if (breaksConnection(err)) this.#drop(cursor, true);
      throw err;
    }
  }

  /** What a FETCH returns, for Describe (extended protocol). */
  async describeFetch(plan: FetchPlan): Promise<StatementDescription> {
    const cursor = this.#get(plan.name);
    if (plan.move) return { paramTypes: [], fields: null };
    if (cursor.merged !== null) return { paramTypes: [], fields: await cursor.merged.fields() };
    const part = cursor.parts[0]!;
    return part.conn.describe(`FETCH ${fetchWords(plan)} FROM ${part.remote}`);
  }

  /** CLOSE name, or CLOSE ALL (name null). */
  /**
   * The open cursors as pg_cursors shows them. Whether a cursor declared
   * without SCROLL or NO SCROLL can move backward PostgreSQL decides from its
   * plan: a cursor on one shard asks that shard; over several shards (read
   * forward through the merge) it is not known (null).
   */
  async views(): Promise<CursorView[]> {
    const out: CursorView[] = [];
    for (const c of this.#open.values()) {
      let scrollable: boolean | null = c.scroll === 'scroll' ? true : c.scroll === 'noScroll' ? false : null;
      const only = c.parts.length === 1 && c.merged === null ? c.parts[0]! : null;
      if (scrollable === null && only !== null) {
        const row = (await only.conn.rows('SELECT is_scrollable FROM pg_catalog.pg_cursors WHERE name = $1', [only.remote]))[0];
        scrollable = row === undefined ? null : row[0] === 't';
      }
      out.push({ name: c.name, statement: c.statement, holdable: c.hold, binary: c.binary, scrollable, creationTime: c.created });
    }
    return out;
  }

  async *close(name: string | null): AsyncGenerator<ExecEvent, void, undefined> {
    const cursors = name === null ? [...this.#open.values()] : [this.#get(name)];
    const errors: unknown[] = [];
    for (const cursor of cursors) {
      const results = await Promise.allSettled(cursor.parts.map((p) => p.conn.exec(`CLOSE ${p.remote}`)));
      const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
      errors.push(...failed);
      this.#drop(cursor, failed.some(breaksConnection));
    }
    if (errors.length > 0) throw combineErrors(errors);
    yield { kind: 'complete', tag: name === null ? 'CLOSE CURSOR ALL' : 'CLOSE CURSOR' };
  }

  /**
   * The transaction ended: its cursors end with it, except, when it
   * committed, those WITH HOLD whose connections it handed over.
   */
  transactionEnded(scope: TxScope, committed: boolean): void {
    for (const cursor of [...this.#open.values()]) {
      if (cursor.scope !== scope) continue;
      if (committed && cursor.hold && cursor.parts.every((p) => this.#kept.has(p.conn))) cursor.scope = null;
      else this.#drop(cursor, false);
    }
    // Handed over for cursors closed before COMMIT: nothing left on them.
    for (const conn of [...this.#kept]) if (!this.#inUse(conn)) this.#let(conn, false);
  }

  /** ROLLBACK TO a savepoint: the shards closed the cursors declared after it (`depth` savepoints remain). */
  rolledBackTo(scope: TxScope, depth: number): void {
    for (const cursor of [...this.#open.values()]) if (cursor.scope === scope && cursor.depth >= depth) this.#drop(cursor, false);
  }

  /** DISCARD ALL (outside a transaction: only kept connections hold cursors). */
  async discardAll(): Promise<void> {
    for await (const ev of this.close(null)) void ev;
  }

  /** The session ends: connections kept for cursors are closed rather than pooled with cursors open on them. */
  closeSession(): void {
    for (const cursor of [...this.#open.values()]) this.#drop(cursor, true);
  }

  #get(name: string): OpenCursor {
    const cursor = this.#open.get(name);
    if (cursor === undefined) throw sgError('unknownCursor', { name });
    return cursor;
  }

  #drop(cursor: OpenCursor, broken: boolean): void {
    if (this.#open.get(cursor.name) === cursor) this.#open.delete(cursor.name);
    cursor.merged?.stop();
    for (const p of cursor.parts) if (this.#kept.has(p.conn) && (broken || !this.#inUse(p.conn))) this.#let(p.conn, broken);
  }

  #inUse(conn: ShardCursor): boolean {
    for (const c of this.#open.values()) if (c.parts.some((p) => p.conn === conn)) return true;
    return false;
  }

  /** Returns a kept connection to its pool (closed when broken or not idle); a transaction's own connections are its to release. */
  #let(conn: ShardCursor, broken: boolean): void {
    if (!this.#kept.delete(conn)) return;
    conn.release(broken || conn.txStatus !== 'I');
  }
}

/** The words after FETCH/MOVE for the shard, from the plan (the count PostgreSQL parsed). */
function fetchWords(plan: FetchPlan): string {
  const dir = plan.direction.toUpperCase();
  return `${dir} ${plan.count === null ? 'ALL' : String(plan.count)}`;
}

/**
 * A cursor over several shards: the first FETCH reads a batch from every
 * shard's cursor (their RowDescriptions and first rows), then the merge pulls
 * further batches from a shard only when it needs that shard's next row.
 * Rows the merge produced beyond what a FETCH asked for wait for the next one.
 */
class MergedCursor {
  readonly #parts: readonly CursorPart[];
  readonly #spec: MergeSpec | null;
  readonly #params: readonly (string | null | undefined)[];
  readonly #running: Set<ShardCursor>;
  #started: Promise<{ fields: FieldDescription[]; rows: AsyncIterator<readonly RawRow[]> }> | null = null;
  #pending: RawRow[] = [];
  #ended = false;

  constructor(parts: readonly CursorPart[], spec: MergeSpec | null, params: readonly (string | null | undefined)[], running: Set<ShardCursor>) {
    this.#parts = parts;
    this.#spec = spec;
    this.#params = params;
    this.#running = running;
  }

  async fields(): Promise<FieldDescription[]> {
    return (await this.#start()).fields;
  }

  /** Up to `count` rows (all when null), batch by batch. */
  async *read(count: number | null): AsyncGenerator<RawRow[], void, undefined> {
    const { rows } = await this.#start();
    let left = count ?? Infinity;
    while (left > 0) {
      if (this.#pending.length === 0) {
        if (this.#ended) return;
        const step = await rows.next();
        if (step.done === true) {
          this.#ended = true;
          return;
        }
        this.#pending = [...step.value];
        continue;
      }
      const take = this.#pending.length <= left ? this.#pending : this.#pending.slice(0, left);
      this.#pending = take === this.#pending ? [] : this.#pending.slice(take.length);
      left -= take.length;
      yield take;
    }
  }

  /** Lets go of the merge (its shard cursors are closed by CLOSE or the end of the transaction). */
  stop(): void {
    this.#ended = true;
    this.#pending = [];
    void this.#started?.then((s) => s.rows.return?.()).catch(() => undefined);
  }

  #start(): Promise<{ fields: FieldDescription[]; rows: AsyncIterator<readonly RawRow[]> }> {
    this.#started ??= (async () => {
      const spec = this.#spec;
      const conns = this.#parts.map((p) => p.conn);
      const text = spec !== null && specComparesValues(spec) ? await shardTextRules(conns) : TEXT_AS_BYTES;
      const settled = await Promise.allSettled(this.#parts.map((p) => fetchBatch(p, this.#running)));
      const failed = settled.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed.length > 0) throw combineErrors(failed.map((r) => r.reason as unknown));
      const firsts = settled.map((r) => (r as PromiseFulfilledResult<{ fields: readonly FieldDescription[]; rows: RawRow[] }>).value);
      const shardFields = firsts[0]!.fields;
      const inputs = this.#parts.map((p, i) => batches(p, firsts[i]!.rows, this.#running));
      if (spec === null) return { fields: [...shardFields], rows: concatenate(inputs)[Symbol.asyncIterator]() };
      return { fields: mergedFields(shardFields, spec), rows: mergeStreams(inputs, shardFields, spec, [...this.#params], { text })[Symbol.asyncIterator]() };
    })();
    return this.#started;
  }
}

async function* concatenate(inputs: readonly AsyncIterable<RawRow[]>[]): AsyncGenerator<RawRow[], void, undefined> {
  for (const input of inputs) yield* input;
}

/** A shard cursor's rows, batch by batch, starting with the batch already fetched. */
async function* batches(part: CursorPart, first: RawRow[], running: Set<ShardCursor>): AsyncGenerator<RawRow[], void, undefined> {
  let rows = first;
  for (;;) {
    if (rows.length > 0) yield rows;
    if (rows.length < FETCH_BATCH) return;
    rows = (await fetchBatch(part, running)).rows;
  }
}

async function fetchBatch(part: CursorPart, running: Set<ShardCursor>): Promise<{ fields: readonly FieldDescription[]; rows: RawRow[] }> {
  let fields: readonly FieldDescription[] = [];
  const rows: RawRow[] = [];
  for await (const ev of stream(part.conn, { sql: `FETCH FORWARD ${FETCH_BATCH} FROM ${part.remote}`, cache: false }, running)) {
    if (ev.kind === 'fields') fields = ev.fields;
    else if (ev.kind === 'rows') rows.push(...ev.rows);
  }
  return { fields, rows };
}

async function* stream(conn: ShardCursor, q: Parameters<ShardCursor['query']>[0], running: Set<ShardCursor>): AsyncGenerator<ExecEvent, void, undefined> {
  running.add(conn);
  try {
    for await (const ev of conn.query(q)) yield ev;
  } finally {
    running.delete(conn);
  }
}

async function drain(conn: ShardCursor, q: Parameters<ShardCursor['query']>[0], running: Set<ShardCursor>): Promise<void> {
  for await (const ev of stream(conn, q, running)) void ev;
}
