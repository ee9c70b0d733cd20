import { createConnector } from '../backend/index.js';
import { loadConfig } from '../config/load.js';
import type { RawConfig } from '../config/schema.js';
import type { ShardGateConfig } from '../config/types.js';
import { Engine, type EngineLog } from '../engine/engine.js';
import type { EngineSession } from '../engine/session-api.js';
import { sgError } from '../errors/index.js';
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

/** Options of `ShardGate.open`. */
export interface OpenOptions {
  readonly log?: EngineLog;
}

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
      return new ShardGate(await Engine.open(validated, { connector, ...(opts.log ? { log: opts.log } : {}) }));
    } catch (err) {
      await connector.close();
      throw err;
    }
  }

  /**
   * Runs SQL in autocommit mode. With parameters the text must be one
   * statement; without, several statements separated by semicolons run as
   * one implicit transaction and the last one's result is returned.
   */
  async query<T = Record<string, unknown>>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<T>> {
    this.#assertOpen();
    const session = this.#session();
    try {
      return await runQuery<T>(session, sql, params);
    } finally {
      await session.close();
    }
  }

  /**
   * Runs `fn` in one transaction: COMMIT when it resolves (atomic across
   * shards), ROLLBACK when it throws, and the error is rethrown. If a
   * statement failed inside and `fn` still resolved, nothing is committed and
   * this rejects with 25P02.
   */
  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    this.#assertOpen();
    const session = this.#session();
    try {
      await runQuery(session, 'BEGIN', []);
      let result: T;
      try {
        result = await fn({ query: <R>(sql: string, params: readonly unknown[] = []) => runQuery<R>(session, sql, params) });
      } catch (err) {
        if (session.txStatus !== 'I') await runQuery(session, 'ROLLBACK', []);
        throw err;
      }
      const done = await runQuery(session, 'COMMIT', []);
      if (done.command === 'ROLLBACK') throw sgError('inFailedTransaction');
      return result;
    } finally {
      await session.close();
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
