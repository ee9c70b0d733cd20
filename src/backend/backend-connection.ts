import type { ShardName } from '../config/names.js';
import type { CopyInSink, CopyOutOptions, FieldsEvent, PreludeEvent, RowFrames, ShardEvent, ShardQuery, StatementDescription } from '../engine/shard-cursor.js';
import { sgError } from '../errors/catalogue.js';
import { PgError, type ErrorFields } from '../errors/pg-error.js';
import { COPY_DATA, DATA_ROW, decodeBackend, decodeRowDescription, encodeDataRow, ROW_DESCRIPTION, type BackendMessage, type FrontendMessage } from '../protocol/index.js';
import type { FieldDescription, RawRow, TxStatus } from '../protocol/fields.js';
import { BufferedCopySink } from './buffered-copy-sink.js';
import { NetworkCopySink } from './network-copy-sink.js';
import type { PoolMember } from './shard-pool.js';
import { StatementCache } from './statement-cache.js';
import type { Transport } from './transport.js';

export const DEFAULT_BATCH_SIZE = 1000;
export const DEFAULT_STATEMENT_CACHE_SIZE = 256;
/**
 * Rows discarded after an early exit beyond which a networked shard is asked to
 * cancel the statement instead of streaming the rest (only for reads started
 * outside a transaction block, where cancelling changes nothing but the work done).
 */
const CANCEL_AFTER_DISCARDED = 10_000;
/** Statements whose cancellation cannot undo anything the caller asked for. */
const READ_ONLY = /^\s*(select|values|table|show|explain)\b/i;
/**
 * Relayed rows (a query with `relay`) are handed on once this many bytes of
 * them are at hand, or sooner: whenever the next message is not a DataRow
 * already received (so rows never wait for the shard's next packet).
 */
const RELAY_BATCH_BYTES = 64 * 1024;
/** Type byte + Int32 length word. */
const HEADER_SIZE = 5;
/** SQLSTATEs after which a cached statement must be parsed again. */
const STALE_STATEMENT = new Set(['26000', '0A000']);

export interface BackendConnectionOptions {
  readonly shard: ShardName;
  readonly transport: Transport;
  /** ParameterStatus values received at start-up (server_version, …). */
  readonly parameters: Map<string, string>;
  readonly statementCacheSize?: number;
}

/** Statements queued by `prelude()`, and who hears what became of them. */
interface Prelude {
  readonly statements: readonly string[];
  readonly listener: (event: PreludeEvent) => void;
}

/** A prelude sent with the running operation, until each statement completed or one failed. */
interface RunningPrelude {
  /** Statements whose CommandComplete has not come yet. */
  left: number;
  readonly listener: (event: PreludeEvent) => void;
}

/** State of one extended-protocol statement while it runs. */
interface Exchange {
  readonly key: string;
  readonly name: string;
  parsing: boolean;
  syncSent: boolean;
  error: ErrorFields | null;
}

/**
 * One backend session on a shard, of either kind, speaking protocol v3 through
 * its transport. Implements everything `ShardCursor` asks of a connection
 * except `release` (see `ShardLease`). One operation at a time: starting a
 * second while one runs throws XX000, since interleaving would corrupt the
 * protocol state. Errors from the shard are thrown as `PgError` only after the
 * shard is ready for the next statement, so the connection stays usable.
 */
export class BackendConnection implements PoolMember {
  readonly shard: ShardName;
  /** Session settings applied on this connection, kept for the session layer; empty on a fresh connection. */
  readonly settings = new Map<string, string>();
  /** ParameterStatus values as last reported by the shard. */
  readonly parameters: Map<string, string>;
  readonly #t: Transport;
  readonly #cache: StatementCache;
  /** Statements to Close (F) in the next exchange (evicted or stale). */
  #closeNext: string[] = [];
  #txStatus: TxStatus = 'I';
  #busy = false;
  /** Statements to send ahead of the next operation (see prelude()). */
  #prelude: Prelude | null = null;
  /** The prelude whose results are still coming: they are consumed before the operation sees anything. */
  #running: RunningPrelude | null = null;

  constructor(opts: BackendConnectionOptions) {
    this.shard = opts.shard;
    this.#t = opts.transport;
    this.parameters = opts.parameters;
    this.#cache = new StatementCache(opts.statementCacheSize ?? DEFAULT_STATEMENT_CACHE_SIZE);
  }

  get kind(): 'network' | 'embedded' {
    return this.#t.kind;
  }
  get serverVersion(): string {
    return this.parameters.get('server_version') ?? '';
  }
  get alive(): boolean {
    return this.#t.alive;
  }
  get busy(): boolean {
    return this.#busy;
  }
  get txStatus(): TxStatus {
    return this.#txStatus;
  }
  /** True while statements queued by prelude() wait for the next operation. */
  get preludeQueued(): boolean {
    return this.#prelude !== null;
  }
  /** Bytes received from the shard and not read yet. */
  get bufferedBytes(): number {
    return this.#t.buffered;
  }
  /** Named statements currently parsed on the shard by this connection. */
  get cachedStatements(): number {
    return this.#cache.size;
  }

  onDeath(listener: () => void): void {
    this.#t.onDeath(listener);
  }

  /**
   * Queues statements (each exactly one SQL command, no parameters) to run
   * ahead of the next operation, in the same write, so they cost no round
   * trip of their own. With the extended protocol (query, rows, describe)
   * each is a Parse/Bind/Execute of the unnamed statement before the
   * operation's own messages, all under the operation's one Sync; with the
   * simple protocol (exec, copyIn, copyOut) they open the operation's Query
   * string. Either way an error in one of them makes the shard skip
   * everything after it up to the Sync (or the end of the string): the
   * operation does not run, and throws that error. Their results are consumed
   * here; the caller sees the operation's own. A BEGIN among them opens a
   * transaction block that the operation runs in, as in a multi-statement Query.
   * Replaces statements not sent yet; an empty list withdraws them. Always true.
   */
  prelude(statements: readonly string[], listener: (event: PreludeEvent) => void): boolean {
    this.#prelude = statements.length === 0 ? null : { statements: [...statements], listener };
    return true;
  }

  /** Drops statements queued by prelude() and not sent (the connection goes back to its pool). */
  discardPrelude(): void {
    this.#prelude = null;
  }

  /**
   * Runs one statement with the extended protocol, binding a cached named
   * statement when this connection parsed the same SQL and parameter types
   * before. Rows come in batches of at most `batchSize`; a networked shard's
   * socket is paused while a batch waits for the consumer, an embedded shard
   * produces one batch per Execute (PortalSuspended loop), so memory stays
   * bounded by the batch size either way.
   */
  query(q: ShardQuery): AsyncGenerator<ShardEvent, void> {
    return this.#query(q);
  }

  async *#query(q: ShardQuery): AsyncGenerator<ShardEvent, void> {
    this.#enter();
    const embedded = this.#t.kind === 'embedded';
    const batchSize = Math.max(1, q.batchSize ?? DEFAULT_BATCH_SIZE);
    // A queued BEGIN puts the statement inside a transaction block, where a cancel would fail the transaction.
    const cancellable = this.#txStatus === 'I' && this.#prelude === null && READ_ONLY.test(q.sql);
    const ex = this.#startExchange(q, embedded ? batchSize : 0);
    let done = false;
    let rows: RawRow[] = [];
    let tag: string | null = null;
    let rowCount = 0;
    let suspended = false;
    const relay = q.relay === true;
    let frames: Buffer[] = [];
    let frameRows = 0;
    let frameBytes = 0;
    try {
      for (;;) {
        // Relayed: DataRow and RowDescription messages at hand are taken as bytes, reading only their headers.
        // Not while a prelude's results come: those are checked message by message.
        if (relay && this.#running === null) {
          const run = this.#t.tryReadRun(DATA_ROW, RELAY_BATCH_BYTES);
          if (run !== null) {
            frames.push(run.bytes);
            frameRows += run.count;
            frameBytes += run.bytes.length;
            rowCount += run.count;
            if (frameRows < batchSize && frameBytes < RELAY_BATCH_BYTES) continue;
          }
          if (frameRows > 0) {
            const batch: RowFrames = { kind: 'frames', frames, rows: frameRows };
            frames = [];
            frameRows = 0;
            frameBytes = 0;
            yield batch;
            continue;
          }
          const description = this.#t.tryReadRun(ROW_DESCRIPTION, 0);
          if (description !== null) {
            yield new RelayedFields(description.bytes);
            continue;
          }
        }
        const msg = this.#tryNext() ?? (await this.#next(ex.error));
        switch (msg.type) {
          case 'DataRow':
            rowCount++;
            if (relay) {
              // A row that crossed two socket reads was copied whole by the reader: framed again, unchanged.
              const frame = encodeDataRow(msg.values);
              frames.push(frame);
              frameRows++;
              frameBytes += frame.length;
              break;
            }
            rows.push(msg.values);
            if (rows.length >= batchSize) {
              const batch = rows;
              rows = [];
              yield { kind: 'rows', rows: batch };
            }
            break;
          case 'ParseComplete':
            ex.parsing = false;
            break;
          case 'BindComplete':
          case 'CloseComplete':
          case 'NoData':
            break;
          case 'RowDescription':
            yield { kind: 'fields', fields: msg.fields };
            break;
          case 'PortalSuspended': {
            // Embedded only: ask for the next batch now; it runs when the consumer wants it.
            suspended = true;
            this.#t.send([{ type: 'Execute', portal: '', maxRows: batchSize }, { type: 'Flush' }]);
            if (rows.length > 0) {
              const batch = rows;
              rows = [];
              yield { kind: 'rows', rows: batch };
            }
            break;
          }
          case 'CommandComplete':
          case 'EmptyQueryResponse':
            tag = msg.type === 'CommandComplete' ? msg.tag : '';
            // A SELECT run in several Executes reports only the last one's rows; report them all, as one Execute would.
            if (suspended && tag.startsWith('SELECT ')) tag = `SELECT ${rowCount}`;
            this.#endExchange(ex);
            if (rows.length > 0) {
              const batch = rows;
              rows = [];
              yield { kind: 'rows', rows: batch };
            }
            break;
          case 'ErrorResponse':
            ex.error ??= msg.fields;
            this.#endExchange(ex);
            break;
          case 'CopyInResponse':
            this.#refuseCopyIn(true);
            break;
          case 'CopyOutResponse':
          case 'CopyData':
          case 'CopyDone':
            break;
          case 'NoticeResponse':
            yield { kind: 'notice', fields: msg.fields };
            break;
          case 'ReadyForQuery':
            this.#txStatus = msg.status;
            done = true;
            this.#finishExchange(ex);
            if (ex.error !== null) throw new PgError(ex.error, this.shard);
            if (tag !== null) this.#noteTag(tag);
            yield { kind: 'complete', tag: tag ?? '' };
            return;
          default:
            throw this.#unexpected(msg);
        }
      }
    } finally {
      if (!done) await this.#abandon(ex, cancellable);
      this.#busy = false;
    }
  }

  /** Runs statements with the simple protocol (no parameters) and returns the last command tag. */
  async exec(sql: string): Promise<string> {
    this.#enter();
    try {
      const { tag, error } = await this.#roundTrip([{ type: 'Query', sql: this.#withPrelude(sql) }]);
      if (error !== null) throw new PgError(error, this.shard);
      return tag;
    } finally {
      this.#busy = false;
    }
  }

  /** Runs one statement with text parameters and results and collects its rows. */
  async rows(sql: string, params: readonly (string | null)[] = []): Promise<(string | null)[][]> {
    const out: (string | null)[][] = [];
    for await (const ev of this.#query({ sql, params })) {
      if (ev.kind === 'rows') for (const row of ev.rows) out.push(row.map((v) => (v === null ? null : v.toString('utf8'))));
    }
    return out;
  }

  /** Parses `sql` as the unnamed statement and describes its parameters and result columns. */
  async describe(sql: string, paramTypes: readonly number[] = []): Promise<StatementDescription> {
    this.#enter();
    try {
      this.#t.send([
        ...this.#closes(),
        ...this.#preludeMessages(),
        { type: 'Parse', name: '', sql, paramTypes },
        { type: 'Describe', target: 'S', name: '' },
        { type: 'Sync' },
      ]);
      let types: readonly number[] = [];
      let fields: readonly FieldDescription[] | null = null;
      let error: ErrorFields | null = null;
      for (;;) {
        const msg = await this.#next(error);
        if (msg.type === 'ParameterDescription') types = msg.types;
        else if (msg.type === 'RowDescription') fields = msg.fields;
        else if (msg.type === 'ErrorResponse') error ??= msg.fields;
        else if (msg.type === 'ReadyForQuery') {
          this.#txStatus = msg.status;
          if (error !== null) throw new PgError(error, this.shard);
          return { paramTypes: types, fields };
        }
      }
    } finally {
      this.#busy = false;
    }
  }

  /**
   * Starts COPY … FROM STDIN. On a networked shard data streams as written
   * (each write waits for the socket to drain). An embedded shard cannot hold
   * a COPY open between requests, so its sink buffers (see BufferedCopySink).
   * The connection stays busy until the sink ends or fails.
   */
  async copyIn(sql: string): Promise<CopyInSink> {
    this.#enter();
    if (this.#t.kind === 'embedded') {
      try {
        // The sink runs its COPY as requests of its own and BEGINs one itself outside a transaction
        // block, so a queued prelude (which may hold BEGIN) runs first, alone.
        await this.#preludeAlone();
      } catch (err) {
        this.#busy = false;
        throw err;
      }
      return new BufferedCopySink({
        sql,
        roundTrip: (messages) => this.#roundTrip(messages),
        txStatus: () => this.#txStatus,
        shard: this.shard,
        onDone: () => (this.#busy = false),
      });
    }
    let started = false;
    try {
      this.#t.send([{ type: 'Query', sql: this.#withPrelude(sql) }]);
      let error: ErrorFields | null = null;
      for (;;) {
        const msg = await this.#next(error);
        if (msg.type === 'CopyInResponse') break;
        if (msg.type === 'ErrorResponse') error ??= msg.fields;
        else if (msg.type === 'ReadyForQuery') {
          this.#txStatus = msg.status;
          throw error !== null
            ? new PgError(error, this.shard)
            : new PgError(sgError('internal', { reason: 'copyIn needs a COPY … FROM STDIN statement' }).fields, this.shard);
        }
      }
      started = true;
      return new NetworkCopySink({
        shard: this.shard,
        send: (messages) => this.#t.send(messages),
        drained: () => this.#t.drained(),
        roundTrip: (messages) => this.#roundTrip(messages),
        onDone: () => (this.#busy = false),
      });
    } finally {
      if (!started) this.#busy = false;
    }
  }

  /**
   * Runs COPY … TO STDOUT, yielding each CopyData payload (one row each, as
   * the shard sent them); returns the command tag. With `batchBytes`, the
   * payloads are handed out joined, many rows per Buffer (each Buffer ends at
   * a payload boundary and is at most about `batchBytes` long, or one payload
   * when that is longer): one await per batch instead of per row.
   */
  copyOut(sql: string, opts?: CopyOutOptions): AsyncGenerator<Buffer, string> {
    return this.#copyOut(sql, Math.max(0, opts?.batchBytes ?? 0));
  }

  async *#copyOut(sql: string, batchBytes: number): AsyncGenerator<Buffer, string> {
    this.#enter();
    const cancellable = this.#txStatus === 'I' && this.#prelude === null;
    const ex: Exchange = { key: '', name: '', parsing: false, syncSent: true, error: null };
    let done = false;
    let tag = '';
    const batch = new PayloadBatch();
    try {
      this.#t.send([{ type: 'Query', sql: this.#withPrelude(sql) }]);
      for (;;) {
        // Batched: CopyData messages at hand are taken as bytes, reading only their headers.
        // Not while a prelude's results come: those are checked message by message.
        if (batchBytes > 0 && this.#running === null) {
          const run = this.#t.tryReadRun(COPY_DATA, batchBytes - batch.bytes);
          if (run !== null) {
            batch.addRun(run.bytes, run.count);
            if (batch.bytes < batchBytes) continue;
            yield batch.take();
            continue;
          }
        }
        let msg = this.#tryNext();
        if (msg === null) {
          // Nothing more at hand: hand on what was gathered before waiting for the shard.
          if (batch.bytes > 0) {
            yield batch.take();
            continue;
          }
          msg = await this.#next(ex.error);
        }
        if (msg.type === 'CopyData') {
          if (batchBytes === 0) yield msg.data;
          else {
            batch.add(msg.data);
            if (batch.bytes >= batchBytes) yield batch.take();
          }
          continue;
        }
        if (batch.bytes > 0) yield batch.take();
        if (msg.type === 'CommandComplete') tag = msg.tag;
        else if (msg.type === 'ErrorResponse') ex.error ??= msg.fields;
        else if (msg.type === 'CopyInResponse') this.#refuseCopyIn(false);
        else if (msg.type === 'ReadyForQuery') {
          this.#txStatus = msg.status;
          done = true;
          if (ex.error !== null) throw new PgError(ex.error, this.shard);
          return tag;
        }
      }
    } finally {
      if (!done) await this.#abandon(ex, cancellable);
      this.#busy = false;
    }
  }

  /** Asks the shard to cancel the running statement (a no-op on embedded shards, which cannot be interrupted). */
  async cancel(): Promise<void> {
    await this.#t.cancel();
  }

  /** Ends the session (Terminate); never rejects. */
  async close(): Promise<void> {
    await this.#t.close();
  }

  #enter(): void {
    if (this.#busy) {
      throw new PgError(sgError('internal', { reason: `connection to shard ${this.shard} used by two operations at once` }).fields, this.shard);
    }
    if (!this.#t.alive) throw new PgError(sgError('shardUnavailable', { shard: this.shard, reason: 'connection closed' }).fields, this.shard);
    this.#busy = true;
  }

  /** Sends Parse (unless cached), Bind, Describe portal and Execute, and Sync (networked) or Flush (embedded). */
  #startExchange(q: ShardQuery, maxRows: number): Exchange {
    // An uncached statement (unique text, such as one tagged with a transaction id) goes as the unnamed statement and evicts nothing.
    const key = q.cache === false ? '' : StatementCache.key(q.sql, q.paramTypes);
    const out: FrontendMessage[] = [];
    let name = key === '' ? '' : this.#cache.get(key);
    let parsing = key === '';
    if (name === undefined) {
      const added = this.#cache.add(key);
      this.#closeNext.push(...added.evicted);
      name = added.name;
      parsing = true;
    }
    out.push(...this.#closes(), ...this.#preludeMessages());
    if (parsing) out.push({ type: 'Parse', name, sql: q.sql, paramTypes: q.paramTypes ?? [] });
    const params = (q.params ?? []).map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p));
    out.push(
      { type: 'Bind', portal: '', statement: name, paramFormats: q.paramFormats ?? [], params, resultFormats: q.resultFormats ?? [] },
      { type: 'Describe', target: 'P', name: '' },
      { type: 'Execute', portal: '', maxRows },
    );
    const syncSent = maxRows === 0;
    out.push(syncSent ? { type: 'Sync' } : { type: 'Flush' });
    this.#t.send(out);
    return { key, name, parsing, syncSent, error: null };
  }

  /** The statement ended (or failed): an embedded exchange still owes its Sync. */
  #endExchange(ex: Exchange): void {
    if (ex.syncSent) return;
    ex.syncSent = true;
    this.#t.send([{ type: 'Sync' }]);
  }

  /** Keeps the statement cache true to what the shard holds once an exchange is over. */
  #finishExchange(ex: Exchange): void {
    if (ex.key === '') return;
    if (ex.parsing) {
      this.#cache.delete(ex.key); // Parse failed or never ran: the name does not exist on the shard
    } else if (ex.error !== null && STALE_STATEMENT.has(ex.error.code)) {
      this.#cache.delete(ex.key);
      this.#closeNext.push(ex.name);
    }
  }

  /**
   * The consumer left before the end: discard the rest so the connection is
   * ready for the next statement. A long read started outside a transaction on
   * a networked shard is cancelled instead of streamed to the end. Failures
   * here are swallowed: a connection left dead is closed when released.
   */
  async #abandon(ex: Exchange, cancellable: boolean): Promise<void> {
    try {
      this.#endExchange(ex);
      let discarded = 0;
      let cancelSent = false;
      for (;;) {
        const msg = this.#tryNext() ?? (await this.#next(null));
        if (msg.type === 'ParseComplete') ex.parsing = false;
        else if (msg.type === 'ErrorResponse') ex.error ??= msg.fields;
        else if (msg.type === 'CopyInResponse') this.#refuseCopyIn(ex.key !== '');
        else if (msg.type === 'ReadyForQuery') {
          this.#txStatus = msg.status;
          this.#finishExchange(ex);
          return;
        } else if ((msg.type === 'DataRow' || msg.type === 'CopyData') && ++discarded > CANCEL_AFTER_DISCARDED && cancellable && !cancelSent) {
          cancelSent = true;
          await this.#t.cancel();
        }
      }
    } catch {
      await this.#t.close();
    }
  }

  /** Sends messages, reads to ReadyForQuery, returns the last command tag and the first error. */
  async #roundTrip(messages: readonly FrontendMessage[]): Promise<{ tag: string; error: ErrorFields | null }> {
    this.#t.send([...this.#closes(), ...messages]);
    let tag = '';
    let error: ErrorFields | null = null;
    for (;;) {
      const msg = await this.#next(error);
      switch (msg.type) {
        case 'CommandComplete':
          tag = msg.tag;
          this.#noteTag(tag);
          break;
        case 'ErrorResponse':
          error ??= msg.fields;
          break;
        case 'CopyInResponse':
          if (!messages.some((m) => m.type === 'CopyData' || m.type === 'CopyDone')) this.#refuseCopyIn(false);
          break;
        case 'ReadyForQuery':
          this.#txStatus = msg.status;
          return { tag, error };
        default:
          break; // rows, notices, copy-out data: not asked for here
      }
    }
  }

  /**
   * A COPY FROM STDIN reached a path that cannot feed it: fail it so the shard
   * returns to normal. The embedded transport already failed it (a COPY left
   * waiting for data would stop PGlite); a networked one needs a CopyFail, and
   * a second Sync after an extended-protocol COPY, since Sync is ignored while copying.
   */
  #refuseCopyIn(extended: boolean): void {
    if (this.#t.kind === 'embedded') return;
    const message = 'COPY FROM STDIN must be run with copyIn()';
    this.#t.send(extended ? [{ type: 'CopyFail', message }, { type: 'Sync' }] : [{ type: 'CopyFail', message }]);
  }

  #noteTag(tag: string): void {
    // The shard dropped every prepared statement: forget ours rather than Bind names that no longer exist.
    if (tag === 'DISCARD ALL' || tag === 'DEALLOCATE ALL') {
      this.#cache.clear();
      this.#closeNext = [];
    }
  }

  /**
   * Takes the queued prelude for sending: from here its results are consumed
   * by #absorb until each statement completed or one failed.
   */
  #takePrelude(): readonly string[] {
    const p = this.#prelude;
    if (p === null) return [];
    this.#prelude = null;
    this.#running = { left: p.statements.length, listener: p.listener };
    p.listener({ kind: 'sent' });
    return p.statements;
  }

  /** The queued prelude as extended-protocol messages: each statement parsed, bound and executed unnamed, no Sync of its own. */
  #preludeMessages(): FrontendMessage[] {
    return this.#takePrelude().flatMap((sql): FrontendMessage[] => [
      { type: 'Parse', name: '', sql, paramTypes: [] },
      { type: 'Bind', portal: '', statement: '', paramFormats: [], params: [], resultFormats: [] },
      { type: 'Execute', portal: '', maxRows: 0 },
    ]);
  }

  /** A simple Query string: the queued prelude, then `sql` (the first error aborts the rest of the string). */
  #withPrelude(sql: string): string {
    const statements = this.#takePrelude();
    return statements.length === 0 ? sql : `${statements.join('; ')}; ${sql}`;
  }

  /** Runs the queued prelude, if any, as a round trip of its own; throws its error. */
  async #preludeAlone(): Promise<void> {
    if (this.#prelude === null) return;
    const { error } = await this.#roundTrip([{ type: 'Query', sql: this.#takePrelude().join('; ') }]);
    if (error !== null) throw new PgError(error, this.shard);
  }

  /**
   * A message that arrived while a prelude's results come. Its own results
   * (and notices) are consumed; its error ends it as failed and is passed on,
   * becoming the operation's error (the shard skipped the operation).
   * Anything else means the statements did not answer one result each (more
   * than one command in one statement): reported as failed, so the caller does
   * not count on the transaction they were to open.
   */
  #preludeResult(running: RunningPrelude, msg: BackendMessage): boolean {
    switch (msg.type) {
      case 'ParseComplete':
      case 'BindComplete':
      case 'NoticeResponse':
        return true;
      case 'CommandComplete':
      case 'EmptyQueryResponse':
        running.left -= 1;
        if (running.left === 0) this.#running = null;
        return true;
      case 'CloseComplete':
        return false; // a Close sent ahead of the prelude
      case 'ErrorResponse':
        this.#failPrelude(new PgError(msg.fields, this.shard));
        return false;
      default:
        this.#failPrelude(new PgError(sgError('internal', { reason: `a prelude statement answered ${msg.type}` }).fields, this.shard));
        return false;
    }
  }

  #failPrelude(error: unknown): void {
    const running = this.#running;
    if (running === null) return;
    this.#running = null;
    const pgError =
      error instanceof PgError
        ? error
        : new PgError(sgError('shardUnavailable', { shard: this.shard, reason: error instanceof Error ? error.message : String(error) }).fields, this.shard);
    running.listener({ kind: 'failed', error: pgError });
  }

  #closes(): FrontendMessage[] {
    if (this.#closeNext.length === 0) return [];
    const out = this.#closeNext.map((name): FrontendMessage => ({ type: 'Close', target: 'S', name }));
    this.#closeNext = [];
    return out;
  }

  #tryNext(): BackendMessage | null {
    for (;;) {
      const raw = this.#t.tryRead();
      if (raw === null) return null;
      const msg = decodeBackend(raw);
      if (!this.#absorb(msg)) return msg;
    }
  }

  /** The next message; when the connection dies, throws the shard's last error (often FATAL) if one came. */
  async #next(pending: ErrorFields | null): Promise<BackendMessage> {
    for (;;) {
      let raw;
      try {
        raw = this.#t.tryRead() ?? (await this.#t.read());
      } catch (err) {
        const error = pending !== null ? new PgError(pending, this.shard) : err;
        // The connection is gone with the prelude's outcome unknown: whatever it began ends with the connection.
        this.#failPrelude(error);
        throw error;
      }
      const msg = decodeBackend(raw);
      if (!this.#absorb(msg)) return msg;
    }
  }

  /** Handles messages that may come at any time; true when consumed. */
  #absorb(msg: BackendMessage): boolean {
    if (msg.type === 'ParameterStatus') {
      this.parameters.set(msg.name, msg.value);
      return true;
    }
    if (msg.type === 'NotificationResponse') return true;
    return this.#running !== null && this.#preludeResult(this.#running, msg);
  }

  #unexpected(msg: BackendMessage): PgError {
    void this.#t.close();
    return new PgError(sgError('shardUnavailable', { shard: this.shard, reason: `unexpected ${msg.type} from the shard` }).fields, this.shard);
  }
}

/**
 * A relayed RowDescription (B): its bytes as the shard sent them, decoded only
 * if someone reads `fields` (a relaying caller forwards `frame` instead).
 */
class RelayedFields implements FieldsEvent {
  readonly kind = 'fields';
  readonly frame: Buffer;
  #fields: FieldsEvent['fields'] | null = null;

  constructor(frame: Buffer) {
    this.frame = frame;
  }

  get fields(): FieldsEvent['fields'] {
    this.#fields ??= decodeRowDescription(this.frame.subarray(HEADER_SIZE)).fields;
    return this.#fields;
  }
}

/**
 * CopyData payloads gathered for one batched copyOut yield. Runs of whole
 * messages (type byte, Int32 length including itself, payload) are copied
 * payload by payload into one Buffer per run, so no Buffer is made per row and
 * nothing aliases the transport's received chunks once taken.
 */
class PayloadBatch {
  #parts: Buffer[] = [];
  bytes = 0;

  /** `count` whole CopyData messages, headers included. */
  addRun(messages: Buffer, count: number): void {
    const out = Buffer.allocUnsafe(messages.length - count * HEADER_SIZE);
    let at = 0;
    let to = 0;
    while (at < messages.length) {
      const end = at + 1 + messages.readInt32BE(at + 1);
      to += messages.copy(out, to, at + HEADER_SIZE, end);
      at = end;
    }
    this.#parts.push(out);
    this.bytes += out.length;
  }

  /** One payload (copied: it may alias a received chunk). */
  add(payload: Buffer): void {
    this.#parts.push(Buffer.from(payload));
    this.bytes += payload.length;
  }

  take(): Buffer {
    const out = this.#parts.length === 1 ? this.#parts[0]! : Buffer.concat(this.#parts, this.bytes);
    this.#parts = [];
    this.bytes = 0;
    return out;
  }
}
