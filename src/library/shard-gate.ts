import { createConnector } from '../backend/index.js';
import { loadConfig } from '../config/load.js';
import type { RawConfig } from '../config/schema.js';
import type { ShardGateConfig } from '../config/types.js';
import { Engine, type EngineLog } from '../engine/engine.js';
import type { EngineSession } from '../engine/session-api.js';
import { sgError } from '../errors/index.js';
import { Metrics } from '../observe/metrics.js';
import { currentTransaction, runInTransaction } from '../observe/tx-context.js';
import { splitStatements } from '../sql/split-statements.js';
import { fromResultText, toParamText } from './js-values.js';

/** One result column, as node-pg describes it. */
export interface ResultField {
  readonly name: string;
  readonly dataTypeID: number;
}

/** The result of one statement, shaped like node-pg's. */
export interface QueryResult<T> {
  readonly rows: T[];
  readonly fields: ResultField[];
  /** Rows returned or affected, from the command tag; null for commands without a count. */
  readonly rowCount: number | null;
  /** The command tag's first word: SELECT, INSERT, CREATE… */
  readonly command: string;
}

/** Runs statements: the library itself (autocommit) or a transaction. */
export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<T>>;
}

/** The data of a `COPY … FROM STDIN`: bytes or text in the statement's format, whole or in pieces. */
export type CopySource = Buffer | string | Iterable<Buffer | string> | AsyncIterable<Buffer | string>;

/** What `transaction()` hands to its callback: statements and COPY FROM STDIN in that transaction. */
export interface Transaction extends Queryable {
  /** Runs `COPY … FROM STDIN` with `data` as its input; resolves with the rows copied. */
  copyFrom(sql: string, data: CopySource): Promise<number>;
}

/** Options of `ShardGate.open`. */
export interface OpenOptions {
  readonly log?: EngineLog;
  /** Where to report metrics (serve `metrics.text()` yourself); default none. */
  readonly metrics?: Metrics;
  /** OpenTelemetry spans (statement → route → shard → 2PC phases), no-op unless the application registers an SDK. Default true. */
  readonly tracing?: boolean;
  /** Period of the distributed deadlock check in ms (0 = off); default 250. It borrows a connection per shard while transactions are open. */
  readonly deadlockCheckMs?: number;
}

/**
 * The transaction `transaction()` hands to its callback. Statements run one
 * at a time in call order (concurrent calls queue). After the transaction
 * (or savepoint) ended, every call fails with 25000 and nothing runs.
 */
class LibraryTransaction implements Transaction {
  readonly #session: EngineSession;
  #queue: Promise<unknown> = Promise.resolve();
  #ended = false;

  constructor(session: EngineSession) {
    this.#session = session;
  }

  query<R = Record<string, unknown>>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<R>> {
    if (this.#ended) return Promise.reject(sgError('transactionEnded'));
    return this.run(() => runQuery<R>(this.#session, sql, params));
  }

  copyFrom(sql: string, data: CopySource): Promise<number> {
    if (this.#ended) return Promise.reject(sgError('transactionEnded'));
    return this.run(() => runCopyFrom(this.#session, sql, data));
  }

  /** Runs `work` after every statement queued before it; refuses once ended unless `evenIfEnded` (the final COMMIT). */
  run<R>(work: () => Promise<R>, evenIfEnded = false): Promise<R> {
    const next = this.#queue.then(() => {
      if (this.#ended && !evenIfEnded) throw sgError('transactionEnded');
      return work();
    });
    this.#queue = next.catch(() => undefined);
    return next;
  }

  /** A view of the same transaction that ends on its own (a savepoint's scope). */
  child(): LibraryTransaction {
    const parentRun = this.run.bind(this);
    const view = new LibraryTransaction(this.#session);
    // Statements of a savepoint scope go through the parent's queue, so the order holds across scopes.
    view.run = <R>(work: () => Promise<R>): Promise<R> =>
      parentRun(() => {
        if (view.#ended) throw sgError('transactionEnded');
        return work();
      });
    return view;
  }

  end(): void {
    this.#ended = true;
  }
}

let savepointCounter = 0;

const LIBRARY_USER = 'shardgate-library';

function isValidated(config: ShardGateConfig | RawConfig | string | undefined): config is ShardGateConfig {
  return typeof config === 'object' && config !== null && (config as ShardGateConfig).tables instanceof Map;
}

/**
 * ShardGate in-process: the same engine and sessions the wire server uses,
 * without the wire. Each `query()` runs on a short-lived session in
 * autocommit mode (a write to several shards commits atomically);
 * `transaction()` runs a function inside BEGIN … COMMIT on one session.
 *
 * Parameters are sent as text (Date as ISO 8601, Buffer as bytea hex, arrays
 * as array literals, other objects as JSON); results are decoded with
 * node-pg's type parsers, so values look as they do with `pg`.
 */
export class ShardGate implements Queryable {
  readonly engine: Engine;
  #closed = false;

  private constructor(engine: Engine) {
    this.engine = engine;
  }

  /**
   * Opens the shards of a configuration: a validated configuration, a raw one
   * (as in shardgate.yaml), a YAML file path, or nothing for
   * SHARDGATE_CONFIG / the embedded default. Throws ConfigError for a bad
   * configuration.
   */
  static async open(config?: ShardGateConfig | RawConfig | string, opts: OpenOptions = {}): Promise<ShardGate> {
    const validated = isValidated(config) ? config : loadConfig(config);
    const connector = await createConnector(validated);
    try {
      return new ShardGate(
        await Engine.open(validated, {
          connector,
          ...(opts.log ? { log: opts.log } : {}),
          metrics: opts.metrics ?? Metrics.disabled(),
          tracing: opts.tracing ?? true,
          tagTransactions: true,
          ...(opts.deadlockCheckMs !== undefined ? { transactions: { deadlockCheckMs: opts.deadlockCheckMs } } : {}),
        }),
      );
    } catch (err) {
      await connector.close();
      throw err;
    }
  }

  /**
   * Runs SQL. Inside `transaction()` (in the same async context, however
   * deep the call) it joins that transaction; work that escaped a transaction
   * that has ended fails with 25000 instead of running on its own. Otherwise
   * autocommit: with parameters the text must be one statement; without,
   * several statements separated by semicolons run as one implicit
   * transaction and the last one's result is returned.
   */
  async query<T = Record<string, unknown>>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<T>> {
    this.#assertOpen();
    const tx = currentTransaction<LibraryTransaction>(this);
    if (tx !== undefined) return tx.query<T>(sql, params);
    const session = this.#session();
    try {
      return await runQuery<T>(session, sql, params);
    } finally {
      await session.close();
    }
  }

  /**
   * Runs one `COPY table [(columns)] FROM STDIN [WITH (…)]` with `data` as its
   * input, routed row by row as the proxy routes a client's COPY: each row to
   * the shard its key value belongs to (all of them atomically), a broadcast
   * table's to every shard. Resolves with the number of rows copied. Inside
   * `transaction()` it joins that transaction. An error of `data` (a throwing
   * iterable) aborts the copy; nothing of it is kept.
   */
  async copyFrom(sql: string, data: CopySource): Promise<number> {
    this.#assertOpen();
    const tx = currentTransaction<LibraryTransaction>(this);
    if (tx !== undefined) return tx.copyFrom(sql, data);
    const session = this.#session();
    try {
      return await runCopyFrom(session, sql, data);
    } finally {
      await session.close();
    }
  }

  /**
   * Runs `fn` in one transaction: COMMIT when it resolves (atomic across
   * shards), ROLLBACK when it throws, and the error is rethrown. If a
   * statement failed inside and `fn` still resolved, nothing is committed and
   * this rejects with 25P02. While `fn` runs, `this.query()` called anywhere
   * in its async context joins the transaction (transactions of parallel
   * async tasks never mix). Called inside another transaction it becomes a
   * savepoint: released when `fn` resolves, rolled back to when it throws.
   * `tx` (and `this.query()` from work `fn` left behind) fails with 25000 once
   * the transaction or savepoint ended.
   */
  async transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
    this.#assertOpen();
    const outer = currentTransaction<LibraryTransaction>(this);
    if (outer !== undefined) return this.#savepoint(outer, fn);
    const session = this.#session();
    const tx = new LibraryTransaction(session);
    try {
      await runQuery(session, 'BEGIN', []);
      let result: T;
      try {
        result = await runInTransaction(this, tx, () => fn(tx));
      } catch (err) {
        await tx.run(async () => {
          if (session.txStatus !== 'I') await runQuery(session, 'ROLLBACK', []);
        });
        throw err;
      } finally {
        tx.end();
      }
      // Statements fn started but did not await finish (or fail) first; their results are not waited for.
      const done = await tx.run(() => runQuery(session, 'COMMIT', []), true);
      if (done.command === 'ROLLBACK') throw sgError('inFailedTransaction');
      return result;
    } finally {
      await session.close();
    }
  }

  /** A nested transaction(): SAVEPOINT, then RELEASE when `fn` resolves or ROLLBACK TO (and RELEASE) when it throws. */
  async #savepoint<T>(outer: LibraryTransaction, fn: (tx: Transaction) => Promise<T>): Promise<T> {
    const name = `sg_library_${++savepointCounter}`;
    await outer.query(`SAVEPOINT ${name}`);
    const inner = outer.child();
    try {
      const result = await runInTransaction(this, inner, () => fn(inner));
      inner.end();
      await outer.query(`RELEASE SAVEPOINT ${name}`);
      return result;
    } catch (err) {
      inner.end();
      await outer.query(`ROLLBACK TO SAVEPOINT ${name}`);
      await outer.query(`RELEASE SAVEPOINT ${name}`);
      throw err;
    }
  }


  /** Waits for nothing in flight: closes the transaction manager and every shard connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.engine.close();
  }

  #session(): EngineSession {
    return this.engine.session({ user: LIBRARY_USER, database: this.engine.config.database });
  }

  #assertOpen(): void {
    if (this.#closed) throw sgError('internal', { reason: 'ShardGate is closed' });
  }
}

/** Runs one COPY … FROM STDIN on a session with `data` as its input; resolves with the rows copied. */
async function runCopyFrom(session: EngineSession, sql: string, data: CopySource): Promise<number> {
  let tag: string | null = null;
  let fed = false;
  for await (const ev of session.execute({ sql, params: [], paramFormats: [0], resultFormats: [0] })) {
    if (ev.kind === 'copyIn') {
      fed = true;
      try {
        for await (const piece of copyPieces(data)) await ev.sink.write(piece);
      } catch (err) {
        await ev.sink.fail(err instanceof Error ? err.message : String(err));
        throw err;
      }
      await ev.sink.end();
    } else if (ev.kind === 'copyOut') {
      throw sgError('featureNotSupported', { feature: 'COPY TO STDOUT through copyFrom', hint: 'Pass a COPY … FROM STDIN statement.' });
    } else if (ev.kind === 'complete') {
      tag = ev.tag;
    }
  }
  if (!fed) throw sgError('featureNotSupported', { feature: 'a statement other than COPY … FROM STDIN in copyFrom', hint: 'Use query() for it.' });
  return Number(/\s(\d+)$/.exec(tag ?? '')?.[1] ?? 0);
}

async function* copyPieces(data: CopySource): AsyncIterable<Buffer> {
  if (typeof data === 'string' || Buffer.isBuffer(data)) {
    yield typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    return;
  }
  for await (const piece of data) {
    const b = typeof piece === 'string' ? Buffer.from(piece, 'utf8') : piece;
    if (b.length > 0) yield b;
  }
}

/** Runs one query text on a session and collects its result. */
async function runQuery<T>(session: EngineSession, sql: string, params: readonly unknown[]): Promise<QueryResult<T>> {
  if (params.length > 0) return runStatement<T>(session, sql, params);
  const statements = splitStatements(sql);
  if (statements.length <= 1) return runStatement<T>(session, statements[0]?.sql ?? '', []);
  session.beginImplicit();
  let ok = false;
  try {
    let last: QueryResult<T> | undefined;
    for (const s of statements) last = await runStatement<T>(session, s.sql, []);
    ok = true;
    return last!;
  } finally {
    await session.endImplicit(ok);
  }
}

async function runStatement<T>(session: EngineSession, sql: string, params: readonly unknown[]): Promise<QueryResult<T>> {
  const encoded = params.map((p) => {
    const text = toParamText(p);
    return text === null ? null : Buffer.from(text, 'utf8');
  });
  let fields: ResultField[] = [];
  let oids: number[] = [];
  const rows: T[] = [];
  let tag = '';
  for await (const ev of session.execute({ sql, params: encoded, paramFormats: [0], resultFormats: [0] })) {
    switch (ev.kind) {
      case 'fields':
        fields = ev.fields.map((f) => ({ name: f.name, dataTypeID: f.typeOid }));
        oids = ev.fields.map((f) => f.typeOid);
        break;
      case 'rows':
        for (const raw of ev.rows) {
          const row: Record<string, unknown> = {};
          raw.forEach((v, i) => {
            row[fields[i]!.name] = v === null ? null : fromResultText(oids[i]!, v.toString('utf8'));
          });
          rows.push(row as T);
        }
        break;
      case 'complete':
        tag = ev.tag;
        break;
      case 'copyIn':
        await ev.sink.fail('COPY FROM STDIN is not available through ShardGate.query');
        throw sgError('featureNotSupported', { feature: 'COPY FROM STDIN through the library', hint: 'Use INSERT, or COPY through the proxy.' });
      case 'copyOut':
        throw sgError('featureNotSupported', { feature: 'COPY TO STDOUT through the library', hint: 'Use SELECT, or COPY through the proxy.' });
      default:
        break;
    }
  }
  const count = /\s(\d+)$/.exec(tag);
  return { rows, fields, rowCount: count ? Number(count[1]) : null, command: tag.split(' ')[0] ?? '' };
}
