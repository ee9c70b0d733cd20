import type { ShardName, TableName } from '../config/names.js';
import { sgError, type PgError } from '../errors/index.js';
import type { CopyFromPlan, CopyToPlan, DeallocatePlan, ExecutePlan, GatherPlan, InsertSelectPlan, Plan, PreparePlan, SetPlan, ShardsPlan, ShowPlan, SubqueryWritePlan, TransactionPlan } from '../planner/plan.js';
import type { RouteContext } from '../planner/planner.js';
import type { FieldDescription, TxStatus } from '../protocol/fields.js';
import { asPgError, breaksConnection } from './combine-errors.js';
import { copyFromEvents } from './copy-from.js';
import { copyOutAll } from './copy-out.js';
import type { EngineContext } from './engine-context.js';
import { insertSelectEvents } from './insert-select.js';
import { subqueryWriteEvents } from './subquery-write.js';
import { routingParams } from './param-text.js';
import { DirectRun, releaseAfter } from './pass-through.js';
import { runShardsPlan, shardQuery } from './run-shards.js';
import { runGather } from './final-step/run-gather.js';
import type { ClientStatement, EngineSession, ExecEvent, ProtocolStatementInfo } from './session-api.js';
import { mayReadSessionViews, sessionViewsRead, withSessionViews, type CursorView, type StatementView } from './session-views.js';
import { parseStartup, REPORTED_SETTINGS, settingIdent, type StartupSettings } from './session-settings.js';
import { parseHint, SettingsState, shardgateSetting, type SettingsTarget } from './settings-state.js';
import type { ShardCursor, StatementDescription } from './shard-cursor.js';
import { SqlCursors } from './sql-cursors.js';
import { executeParams, resolveTypes, typeNames, type SqlPreparedStatement } from './sql-prepared.js';
import { readTableColumns } from './table-columns.js';
import { TxScope, type SessionSnapshot } from './tx-scope.js';

/** Who a session belongs to, from the client's startup message. */
export interface SessionInfo {
  readonly user: string;
  readonly database: string;
  /** Startup parameters: application_name, client_encoding, DateStyle, TimeZone, search_path, options (-c name=value)… */
  readonly parameters?: Readonly<Record<string, string>>;
}

/**
 * How a statement uses connections (see #withConnections): its command tag
 * word; whether it writes; the shards it runs on (null: known only while it
 * runs); whether it needs a transaction ('auto': only to make a write to
 * several shards atomic; 'always'; 'never': PostgreSQL refuses it inside a
 * transaction block); what it does that PREPARE cannot follow, if anything.
 */
interface ConnectionUse {
  readonly command: string;
  readonly writes: boolean;
  readonly shards: readonly ShardName[] | null;
  readonly transaction: 'auto' | 'always' | 'never';
  readonly notPreparable?: string | undefined;
}

const warning = (code: string, message: string): ExecEvent => ({ kind: 'notice', fields: { severity: 'WARNING', code, message } });

/** A text column of a result ShardGate answers itself. */
export function textField(name: string, format: 0 | 1 = 0): FieldDescription {
  return { name, tableOid: 0, columnAttr: 0, typeOid: 25, typeSize: -1, typeModifier: -1, format };
}

/**
 * One client session over the engine: session settings, the shard hint and
 * the current global transaction. Outside a transaction a statement runs on
 * connections taken for it alone (no BEGIN; released when it completes),
 * except a write to several shards, which runs in its own global transaction
 * so it commits everywhere or nowhere.
 */
export class Session implements EngineSession {
  readonly #ctx: EngineContext;
  readonly #user: string;
  readonly #startup: StartupSettings;
  readonly #settings: SettingsState;
  #hint: ShardName | null = null;
  /** `SET shardgate.read_consistency`: 'snapshot' reads every shard at one cut (src/tx/README.md, "One cut"). */
  #readConsistency: ReadConsistency = 'shard';
  #scope: TxScope | null = null;
  #implicitBlock = false;
  readonly #running = new Set<ShardCursor>();
  readonly #columnCounts = new Map<string, number>();
  #cursors = 0;
  #closed = false;
  /** SQL PREPARE statements by name (protocol-level ones are the server's). */
  readonly #prepared = new Map<string, SqlPreparedStatement>();
  #protocolStatements: () => readonly ProtocolStatementInfo[] = () => [];
  readonly #sqlCursors: SqlCursors;

  constructor(ctx: EngineContext, info: SessionInfo) {
    this.#ctx = ctx;
    this.#user = info.user;
    this.#startup = parseStartup(info.parameters);
    this.#settings = new SettingsState(this.#startup.settings);
    this.#sqlCursors = new SqlCursors({
      participant: (scope, shard) => this.#statementParticipant(scope, shard, false),
      acquire: (shard) => this.#acquireForStatement(shard),
      refresh: (conn) => this.#settings.values.apply(conn),
      noteHold: (scope, shards) => this.#noteNotPreparable(scope, { command: 'DECLARE CURSOR', writes: false, shards, transaction: 'auto', notPreparable: 'a cursor WITH HOLD' }),
      embedded: (shard) => this.#ctx.config.shards.find((s) => s.name === shard)?.kind === 'embedded',
      running: this.#running,
    });
  }

  get txStatus(): TxStatus {
    const scope = this.#scope;
    if (scope === null || !scope.explicit) return 'I';
    return scope.failed ? 'E' : 'T';
  }

  /** The global transaction in progress (explicit or implicit), or null; read by the admin API and logs. */
  get transaction(): TxScope['tx'] | null {
    return this.#scope?.tx ?? null;
  }

  /** The shard hint in force (SET LOCAL inside the transaction wins over SET). */
  get hint(): ShardName | null {
    const local = this.#scope?.localHint;
    return local === undefined ? this.#hint : local;
  }

  async initialParameters(): Promise<ReadonlyMap<string, string>> {
    const defaults = await this.#ctx.serverDefaults();
    const params = new Map<string, string>([
      ['server_version', defaults.serverVersion],
      ['server_encoding', 'UTF8'],
      ['client_encoding', this.#startup.clientEncoding],
      ['DateStyle', 'ISO, MDY'],
      ['TimeZone', defaults.timeZone],
      ['integer_datetimes', 'on'],
      ['standard_conforming_strings', 'on'],
      ['IntervalStyle', 'postgres'],
      ['is_superuser', 'off'],
      ['session_authorization', this.#user],
      ['application_name', this.#startup.applicationName],
    ]);
    // Startup settings are applied (and so checked) on the default shard now, and reported as it shows them.
    const names = [...this.#startup.settings.keys()].filter((n) => REPORTED_SETTINGS.has(n) && n !== 'application_name');
    if (this.#startup.settings.size > (this.#startup.applicationName === '' ? 0 : 1)) {
      const conn = await this.#acquire(this.#ctx.config.defaultShard);
      let broken = false;
      try {
        await this.#settings.values.apply(conn);
        for (const [name, value] of await this.#settings.current(conn, names)) params.set(name, value);
      } catch (err) {
        broken = breaksConnection(err);
        throw err;
      } finally {
        conn.release(broken);
      }
    }
    this.#settings.reportedAtStart(params);
    return params;
  }

  useProtocolStatements(list: () => readonly ProtocolStatementInfo[]): void {
    this.#protocolStatements = list;
  }

  execute(stmt: ClientStatement): AsyncIterable<ExecEvent> {
    // pg_prepared_statements and pg_cursors describe this session, not the pooled connection that would answer them.
    if (mayReadSessionViews(stmt.sql) && !this.#closed) return this.#executeWithSessionViews(stmt);
    const scope = this.#scope;
    if (this.#closed || scope?.failed === true || (scope === null && this.#implicitBlock)) return this.#execute(stmt, null);
    const params = routingParams(stmt);
    const plan = this.#plan(stmt.sql, params);
    if (plan.kind !== 'shards' || plan.statements.length !== 1 || plan.merge !== null || plan.ddl) return this.#execute(stmt, { params, plan });
    const shard = plan.statements[0]!;
    // Its events pass through unchanged (DirectRun), so a relaying caller may take its rows as the shard's bytes.
    const query = shardQuery(shard, stmt, stmt.resultFormats, stmt.relay === true);
    if (scope === null) {
      // Outside a transaction, one statement on one shard needs no transaction of its own (see #withConnections).
      return new DirectRun(
        {
          acquire: () => this.#acquireForStatement(shard.shard),
          running: this.#running,
          done: releaseAfter,
          fail: asPgError,
        },
        query,
      );
    }
    if (plan.transactional === false || plan.notPreparable !== undefined) return this.#execute(stmt, { params, plan });
    // Inside a transaction: its participant on the shard, as #withConnections gives it.
    return new DirectRun(
      {
        acquire: () => this.#statementParticipant(scope, shard.shard, plan.writes),
        running: this.#running,
        done: () => undefined,
        fail: (err) => this.#failWith(err),
      },
      query,
    );
  }

  async *#executeWithSessionViews(stmt: ClientStatement): AsyncGenerator<ExecEvent, void, undefined> {
    const read = sessionViewsRead(stmt.sql);
    if (read === null) {
      yield* this.#execute(stmt, null);
      return;
    }
    if (this.#scope?.failed === true) throw sgError('inFailedTransaction');
    // The unnamed portal running this query is not listed: PostgreSQL hides the portals of Query and Bind too.
    const cursors: CursorView[] = read.views.has('pg_cursors') ? await this.#sqlCursors.views() : [];
    const statements: StatementView[] = [];
    if (read.views.has('pg_prepared_statements')) {
      for (const [name, p] of this.#prepared) {
        statements.push({ name, statement: p.statement, prepareTime: p.prepareTime, paramTypes: p.paramTypes, fromSql: true, runs: p.runs });
      }
      for (const p of this.#protocolStatements()) {
        // Types Parse left open are those PostgreSQL inferred, as Describe reports them.
        const paramTypes = p.paramTypes.includes(0) ? (await this.describe(p.sql, p.paramTypes)).paramTypes : p.paramTypes;
        statements.push({ name: p.name, statement: p.sql, prepareTime: p.prepareTime, paramTypes, fromSql: false, runs: p.binds });
      }
    }
    const sql = withSessionViews(read, { statements, cursors, planCacheModeSet: this.#settings.values.has('plan_cache_mode') });
    yield* this.#execute({ ...stmt, sql }, null);
  }

  /** The error a statement reports; inside a transaction block any error aborts the whole global transaction, as on one server. */
  #failWith(err: unknown): PgError {
    const error = asPgError(err);
    const current = this.#scope;
    if (current !== null && current.tx.state === 'active' && !current.tx.ending) return current.tx.fail(error);
    return error;
  }

  async *#execute(
    stmt: ClientStatement,
    planned: { params: readonly (string | null | undefined)[]; plan: Plan } | null,
  ): AsyncGenerator<ExecEvent, void, undefined> {
    if (this.#closed) throw sgError('internal', { reason: 'execute() on a closed session' });
    const params = planned?.params ?? routingParams(stmt);
    let plan = planned?.plan ?? this.#plan(stmt.sql, params);
    const scope = this.#scope;
    const allowedWhenFailed =
      (plan.kind === 'transaction' && (plan.op === 'commit' || plan.op === 'rollback' || plan.op === 'rollbackTo')) || (plan.kind === 'empty' && plan.command === null);
    if (scope?.failed && !allowedWhenFailed) {
      throw sgError('inFailedTransaction');
    }
    try {
      // An INSERT without a column list, or a write whose subqueries may refer to it: learn a table's column order and plan again.
      const read = new Set<TableName>();
      while (plan.kind === 'refuse' && plan.needsColumns !== undefined && !read.has(plan.needsColumns)) {
        read.add(plan.needsColumns);
        await this.#loadColumns(plan.needsColumns);
        plan = this.#plan(stmt.sql, params);
      }
      switch (plan.kind) {
        case 'refuse':
          throw plan.error;
        case 'empty':
          yield* this.#empty(plan.command);
          return;
        case 'show':
          yield* this.#show(plan, stmt);
          return;
        case 'set':
          yield* this.#set(plan);
          return;
        case 'transaction':
          yield* this.#transaction(plan);
          return;
        case 'shards':
          yield* this.#shards(plan, stmt, params);
          return;
        case 'copyFrom':
          yield* this.#copyFrom(plan);
          return;
        case 'copyTo':
          yield* this.#copyTo(plan);
          return;
        case 'insertSelect':
          yield* this.#insertSelect(plan, stmt, params);
          return;
        case 'subqueryWrite':
          yield* this.#subqueryWrite(plan, stmt, params);
          return;
        case 'gather':
          yield* this.#gather(plan, stmt);
          return;
        case 'prepare':
          yield* this.#prepare(plan, stmt);
          return;
        case 'execute':
          yield* this.#executePrepared(plan, stmt);
          return;
        case 'deallocate':
          yield* this.#deallocate(plan);
          return;
        case 'declare': {
          let scope = this.#scope;
          if (scope === null && this.#implicitBlock) scope = this.#begin(false);
          yield* this.#sqlCursors.declare(plan, stmt, params, scope);
          return;
        }
        case 'fetch':
          yield* this.#sqlCursors.fetch(plan, stmt);
          return;
        case 'close':
          yield* this.#sqlCursors.close(plan.name);
          return;
      }
    } catch (err) {
      throw this.#failWith(err);
    }
  }

  #plan(sql: string, params: readonly (string | null | undefined)[]): Plan {
    try {
      return this.#ctx.planner.plan(sql, params, this.#routeContext());
    } catch (err) {
      return { kind: 'refuse', error: asPgError(err) };
    }
  }

  #routeContext(): RouteContext {
    const scope = this.#scope;
    return {
      hintShard: this.hint,
      columnsOf: (table) => scope?.columns.get(table) ?? (scope?.ddlTables.has(table) ? undefined : this.#ctx.tableColumns.get(table)),
    };
  }

  /**
   * Reads a table's column order on the default shard (a sharded table exists
   * on every shard). Inside a transaction it is read on the transaction's own
   * connection, which sees DDL the transaction made, and kept for that
   * transaction only; outside, it is kept for the engine.
   */
  async #loadColumns(table: TableName): Promise<void> {
    let scope = this.#scope;
    if (scope === null && this.#implicitBlock) scope = this.#begin(false);
    const shard = this.#ctx.config.defaultShard;
    if (scope !== null) {
      scope.columns.set(table, await readTableColumns(await this.#participant(scope, shard), table));
      return;
    }
    const taken: ShardCursor[] = [];
    let error: unknown;
    try {
      this.#ctx.tableColumns.set(table, await readTableColumns(await this.#acquireDirect(shard, taken), table));
    } catch (err) {
      error = err ?? new Error('unknown error');
      throw err;
    } finally {
      this.#releaseAll(taken, error);
    }
  }

  /** Forgets cached column orders of tables whose DDL ran (now, or in a transaction that just ended). */
  #forgetColumns(tables: Iterable<TableName>): void {
    this.#ctx.tableColumns.forget(tables);
  }

  async *#empty(command: string | null): AsyncGenerator<ExecEvent, void, undefined> {
    if (command === null) {
      yield { kind: 'empty' };
      return;
    }
    if (command === 'DISCARD ALL') {
      if (this.#scope?.explicit) throw sgError('cannotRunInTransaction', { command });
      this.#hint = null;
      this.#readConsistency = 'shard';
      this.#prepared.clear();
      await this.#sqlCursors.discardAll();
      yield* this.#settings.resetAll(this.#settingsTarget());
    }
    yield { kind: 'complete', tag: command };
  }

  // ---- SHOW / SET -------------------------------------------------------

  async *#show(plan: ShowPlan, stmt: ClientStatement): AsyncGenerator<ExecEvent, void, undefined> {
    const value = plan.name === READ_CONSISTENCY ? this.#readConsistency : shardgateSetting(this.#ctx.config, this.hint, plan.name);
    const format = stmt.resultFormats?.length === 1 ? stmt.resultFormats[0]! : (stmt.resultFormats?.[0] ?? 0);
    // A text value's binary form is its UTF-8 bytes, so either format carries the same bytes.
    yield { kind: 'fields', fields: [textField(plan.name, format)] };
    yield { kind: 'rows', rows: [[Buffer.from(value, 'utf8')]] };
    yield { kind: 'complete', tag: 'SHOW' };
  }

  async *#set(plan: SetPlan): AsyncGenerator<ExecEvent, void, undefined> {
    let scope = this.#scope;
    // In a multi-statement query the SET belongs to its implicit transaction and rolls back with it.
    if (scope === null && this.#implicitBlock && !(plan.name ?? '').startsWith('shardgate.')) scope = this.#begin(false);
    // SET TRANSACTION … belongs to the current transaction: it is sent like SET LOCAL, as written.
    const txCharacteristics = plan.name === 'transaction' || plan.name === 'transaction snapshot';
    if (plan.name === 'session characteristics') {
      throw sgError('featureNotSupported', { feature: 'SET SESSION CHARACTERISTICS', hint: 'SET default_transaction_isolation (or default_transaction_read_only) instead.' });
    }
    if ((plan.local || txCharacteristics) && scope === null) {
      // As PostgreSQL: SET LOCAL outside a transaction block has no effect.
      yield warning('25P01', `${txCharacteristics ? 'SET TRANSACTION' : 'SET LOCAL'} can only be used in transaction blocks`);
      yield { kind: 'complete', tag: plan.command };
      return;
    }
    if (plan.name === READ_CONSISTENCY) {
      // Session-wide only: a transaction's snapshots are fixed when it begins, so a change inside one would mean nothing.
      if (scope !== null || plan.local) {
        throw sgError('featureNotSupported', { feature: 'SET shardgate.read_consistency inside a transaction block', hint: 'Set it before BEGIN.' });
      }
      this.#readConsistency = parseReadConsistency(plan.value);
      yield { kind: 'complete', tag: plan.command };
      return;
    }
    if (plan.name !== null && plan.name.startsWith('shardgate.')) {
      const hint = parseHint(this.#ctx.config, plan.name, plan.value);
      if (plan.local && scope !== null) scope.localHint = hint;
      else this.#hint = hint;
      yield { kind: 'complete', tag: plan.command };
      return;
    }
    if (plan.name === null) {
      yield* this.#settings.resetAll(this.#settingsTarget());
    } else if ((plan.local || txCharacteristics) && scope !== null) {
      const stmt = txCharacteristics
        ? plan.sql
        : plan.value === null
          ? `SET LOCAL ${settingIdent(plan.name)} TO DEFAULT`
          : `SET LOCAL ${settingIdent(plan.name)} TO ${plan.value}`;
      const conns = await this.#txConnections(scope);
      for (const conn of conns) await conn.exec(stmt);
      scope.localSettings.set(plan.name, stmt);
      yield* this.#settings.reportChanges(conns[0]!, [plan.name]);
    } else {
      yield* this.#settings.set(plan.name, plan.value, this.#settingsTarget());
    }
    yield { kind: 'complete', tag: plan.command };
  }

  /** Where a SET runs now: the transaction's connections, or a default-shard connection taken for it. */
  #settingsTarget(): SettingsTarget {
    const scope = this.#scope;
    if (scope === null) return { kind: 'session', acquire: () => this.#acquire(this.#ctx.config.defaultShard) };
    return { kind: 'transaction', connections: () => this.#txConnections(scope) };
  }

  /** The transaction's joined connections; joins the default shard when none has joined yet. */
  async #txConnections(scope: TxScope): Promise<ShardCursor[]> {
    if (scope.seen.size === 0) await this.#participant(scope, this.#ctx.config.defaultShard);
    return [...scope.seen];
  }

  // ---- transactions -----------------------------------------------------

  #snapshot(): SessionSnapshot {
    return { ...this.#settings.snapshot(), hint: this.#hint };
  }

  /** Restores session state saved at a transaction's start or a savepoint; reports settings that change back. */
  *#restore(snap: SessionSnapshot): Generator<ExecEvent, void, undefined> {
    this.#hint = snap.hint;
    yield* this.#settings.restore(snap);
  }

  #begin(explicit: boolean, beginSql?: string, options = ''): TxScope {
    if (!explicit && this.#readConsistency === 'snapshot') {
      // A multi-statement query's implicit transaction reads one cut too.
      beginSql = 'BEGIN ISOLATION LEVEL REPEATABLE READ';
      options = 'ISOLATION LEVEL REPEATABLE READ';
    }
    const tx = this.#ctx.transactions.begin({
      ...(beginSql !== undefined ? { beginSql } : {}),
      ...(beginsAtCut(options) || (this.#readConsistency === 'snapshot' && snapshotIsolation(options)) ? { atCut: { lockTimeoutMs: this.#ctx.config.transactions.prepareTimeoutMs } } : {}),
      setup: (conn) => this.#settings.values.apply(conn),
    });
    this.#scope = new TxScope(tx, explicit, this.#snapshot());
    return this.#scope;
  }

  /**
   * The transaction's connection for a statement on `shard`; a write is
   * refused (0A000, before it runs) when it would make a branch that cannot
   * PREPARE one of several written shards, and is marked as written.
   */
  async #statementParticipant(scope: TxScope, shard: ShardName, write: boolean): Promise<ShardCursor> {
    if (write) {
      const bad = scope.unpreparableWrite([shard]);
      if (bad !== null) throw sgError('notPreparableAcrossShards', { what: bad.what, shards: bad.shards.join(', ') });
    }
    const conn = await this.#participant(scope, shard);
    if (write) scope.tx.markWritten(shard);
    return conn;
  }

  /** The shard's connection in the transaction; a newly joined one gets the transaction's SET LOCAL statements. */
  async #participant(scope: TxScope, shard: ShardName): Promise<ShardCursor> {
    const conn = await scope.tx.participant(shard);
    if (!scope.seen.has(conn)) {
      scope.seen.add(conn);
      if (scope.localSettings.size > 0) await conn.exec([...scope.localSettings.values()].join('; '));
    }
    return conn;
  }

  async *#transaction(plan: TransactionPlan): AsyncGenerator<ExecEvent, void, undefined> {
    const scope = this.#scope;
    switch (plan.op) {
      case 'begin':
        if (scope?.explicit) {
          yield { kind: 'notice', fields: { severity: 'WARNING', code: '25001', message: 'there is already a transaction in progress' } };
        } else if (scope !== null) {
          // BEGIN inside a multi-statement query turns its implicit transaction into a block.
          scope.explicit = true;
        } else {
          if (this.#readConsistency === 'snapshot' && !snapshotIsolation(plan.options)) {
            throw sgError('snapshotNeedsRepeatableRead', { level: 'READ COMMITTED' });
          }
          this.#begin(true, plan.options === '' ? undefined : `BEGIN ${plan.options}`, plan.options);
        }
        yield { kind: 'complete', tag: plan.command };
        return;
      case 'commit':
      case 'rollback': {
        if (scope === null) {
          yield warning('25P01', 'there is no transaction in progress');
          yield { kind: 'complete', tag: plan.op === 'commit' ? 'COMMIT' : 'ROLLBACK' };
          return;
        }
        const tag = plan.op === 'commit' ? await this.#commit(scope) : await this.#rollback(scope);
        if (tag === 'ROLLBACK') yield* this.#restore(scope.atStart);
        yield { kind: 'complete', tag };
        return;
      }
      case 'savepoint':
      case 'release':
      case 'rollbackTo':
        if (scope === null || !scope.explicit) throw sgError('noTransactionBlock', { command: plan.command });
        yield* this.#savepoint(scope, plan.op, plan.name ?? '');
        yield { kind: 'complete', tag: plan.command };
        return;
      case 'prepare':
      case 'commitPrepared':
      case 'rollbackPrepared':
        throw sgError('featureNotSupported', {
          feature: plan.command,
          hint: 'ShardGate runs two-phase commit itself: a COMMIT that wrote to several shards is atomic.',
        });
    }
  }

  async *#savepoint(scope: TxScope, op: 'savepoint' | 'release' | 'rollbackTo', name: string): AsyncGenerator<ExecEvent, void, undefined> {
    if (op === 'savepoint') {
      await scope.tx.savepoint(name);
      scope.savepoint(name, this.#snapshot());
    } else if (op === 'release') {
      await scope.tx.release(name);
      scope.release(name);
    } else {
      await scope.tx.rollbackTo(name);
      const snap = scope.rollbackTo(name);
      this.#sqlCursors.rolledBackTo(scope, scope.depth);
      if (snap !== null) yield* this.#restore(snap);
    }
  }

  /** Ends the transaction with COMMIT; 'ROLLBACK' when it had failed. Settings set inside it stay only if it committed. */
  async #commit(scope: TxScope): Promise<'COMMIT' | 'ROLLBACK'> {
    this.#scope = null;
    try {
      return await scope.tx.commit();
    } catch (err) {
      for (const ev of this.#restore(scope.atStart)) void ev;
      throw err;
    } finally {
      // Another session may have cached a column order while this transaction's DDL was uncommitted.
      this.#forgetColumns(scope.ddlTables);
      this.#sqlCursors.transactionEnded(scope, scope.tx.state === 'committed');
    }
  }

  async #rollback(scope: TxScope): Promise<'ROLLBACK'> {
    this.#scope = null;
    this.#forgetColumns(scope.ddlTables);
    try {
      await scope.tx.rollback();
    } finally {
      this.#sqlCursors.transactionEnded(scope, false);
    }
    return 'ROLLBACK';
  }

  beginImplicit(): void {
    this.#implicitBlock = true;
  }

  async endImplicit(ok: boolean): Promise<void> {
    this.#implicitBlock = false;
    const scope = this.#scope;
    // A BEGIN in the query made it a transaction block, which stays open.
    if (scope === null || scope.explicit) return;
    if (ok && !scope.failed) {
      const tag = await this.#commit(scope);
      if (tag === 'COMMIT') return;
    } else {
      await this.#rollback(scope);
    }
    for (const ev of this.#restore(scope.atStart)) void ev;
  }

  // ---- statements on shards ---------------------------------------------

  #acquire(shard: ShardName): Promise<ShardCursor> {
    return this.#ctx.connector.acquire(shard, this.#ctx.config.pool.acquireTimeoutMs);
  }

  /**
   * A connection for one statement outside a transaction, with the session's
   * settings applied; released (closed when broken) if applying them fails.
   * Chained rather than awaited: this runs before every autocommit statement.
   */
  #acquireForStatement(shard: ShardName): Promise<ShardCursor> {
    return this.#acquire(shard).then((conn) =>
      this.#settings.values.apply(conn).then(
        () => conn,
        (err: unknown) => {
          this.#releaseAll([conn], err ?? new Error('unknown error'));
          throw err;
        },
      ),
    );
  }

  /** A connection for one statement outside a transaction, with the session's settings applied; added to `taken` for the caller to release. */
  async #acquireDirect(shard: ShardName, taken: ShardCursor[]): Promise<ShardCursor> {
    const conn = await this.#acquireForStatement(shard);
    taken.push(conn);
    return conn;
  }

  /** Releases connections taken for one statement; a connection left inside a transaction or after a connection-level error is closed. */
  #releaseAll(taken: readonly ShardCursor[], error: unknown): void {
    for (const conn of taken) conn.release((error !== undefined && breaksConnection(error)) || conn.txStatus !== 'I');
  }

  /**
   * Runs a statement's work (`body`) with the connections it should use:
   * - a statement PostgreSQL refuses in a transaction block
   *   (`transaction: 'never'`): 25001 inside one; otherwise connections taken
   *   for it alone on each shard, without BEGIN (not atomic across shards);
   * - inside a transaction (or a multi-statement query's implicit one): the
   *   transaction's participants, written shards marked as such; a write that
   *   would make a branch that cannot PREPARE one of several written shards
   *   fails first with 0A000;
   * - outside, writing two or more shards (or `transaction: 'always'`): a
   *   global transaction of its own, committed before the command tag is
   *   sent, so the write is atomic;
   * - otherwise: connections taken for this statement only (no BEGIN),
   *   released as soon as it completes.
   * `connection(shard, write)` returns one connection per shard however often it is called.
   */
  async *#withConnections(
    use: ConnectionUse,
    body: (connection: (shard: ShardName, write?: boolean) => Promise<ShardCursor>) => AsyncIterable<ExecEvent>,
  ): AsyncGenerator<ExecEvent, void, undefined> {
    let scope = this.#scope;
    if (use.transaction === 'never' && (scope !== null || this.#implicitBlock)) throw sgError('cannotRunInTransaction', { command: use.command });
    if (scope === null && this.#implicitBlock) scope = this.#begin(false);
    if (scope !== null) {
      const inTx = scope;
      if (use.notPreparable !== undefined) this.#noteNotPreparable(inTx, use);
      yield* body((shard, write = use.writes) => this.#statementParticipant(inTx, shard, write));
      return;
    }
    const several = use.shards === null || new Set(use.shards).size >= 2;
    const atCut = this.#readConsistency === 'snapshot' && several && use.transaction !== 'never';
    if (use.transaction === 'always' || (use.transaction === 'auto' && use.writes && several) || atCut) {
      // Under 'snapshot' a statement on several shards runs in a REPEATABLE READ transaction begun at one cut.
      const cut = atCut ? (use.writes ? 'ISOLATION LEVEL REPEATABLE READ' : 'ISOLATION LEVEL REPEATABLE READ, READ ONLY') : null;
      yield* this.#atomically(cut, (tx) =>
        body(async (shard, write = use.writes) => {
          const conn = await tx.participant(shard);
          if (write) tx.markWritten(shard);
          return conn;
        }),
      );
      return;
    }
    const taken: ShardCursor[] = [];
    const byShard = new Map<ShardName, Promise<ShardCursor>>();
    let error: unknown;
    try {
      yield* body((shard) => {
        let conn = byShard.get(shard);
        if (conn === undefined) {
          conn = this.#acquireDirect(shard, taken);
          byShard.set(shard, conn);
        }
        return conn;
      });
    } catch (err) {
      error = err ?? new Error('unknown error');
      throw err;
    } finally {
      this.#releaseAll(taken, error);
    }
  }

  /**
   * Records that the statement's shards can no longer PREPARE, refusing it
   * (0A000, before it runs) when one of them is, or would become by this
   * statement, one of two or more written shards.
   */
  #noteNotPreparable(scope: TxScope, use: ConnectionUse): void {
    const shards = use.shards ?? [];
    const added = new Map(shards.map((s) => [s, use.notPreparable ?? '']));
    const bad = scope.unpreparableWrite(use.writes ? shards : [], added);
    if (bad !== null) throw sgError('notPreparableAcrossShards', { what: bad.what, shards: bad.shards.join(', ') });
    for (const [shard, what] of added) if (!scope.notPreparable.has(shard)) scope.notPreparable.set(shard, what);
  }

  /**
   * Runs one autocommit statement in its own global transaction: its events
   * pass through, except the command tag, which is sent only once the
   * transaction committed. Anything else (an error, the consumer stopping
   * early) rolls back on every shard.
   */
  async *#atomically(cutOptions: string | null, body: (tx: TxScope['tx']) => AsyncIterable<ExecEvent>): AsyncGenerator<ExecEvent, void, undefined> {
    const tx = this.#ctx.transactions.begin({
      setup: (conn) => this.#settings.values.apply(conn),
      ...(cutOptions !== null ? { beginSql: `BEGIN ${cutOptions}`, atCut: { lockTimeoutMs: this.#ctx.config.transactions.prepareTimeoutMs } } : {}),
    });
    let done = false;
    try {
      let tag: ExecEvent | null = null;
      for await (const ev of body(tx)) {
        if (ev.kind === 'complete') tag = ev;
        else yield ev;
      }
      const outcome = await tx.commit();
      done = true;
      if (outcome !== 'COMMIT') throw sgError('transactionRolledBack', { shards: [...tx.participants.keys()].join(', ') });
      if (tag !== null) yield tag;
    } finally {
      if (!done) await tx.rollback();
    }
  }

  async *#shards(plan: ShardsPlan, stmt: ClientStatement, params: readonly (string | null | undefined)[]): AsyncGenerator<ExecEvent, void, undefined> {
    const use: ConnectionUse = {
      writes: plan.writes,
      shards: plan.statements.map((s) => s.shard),
      command: plan.command,
      transaction: plan.transactional === false ? 'never' : 'auto',
      notPreparable: plan.notPreparable,
    };
    try {
      yield* this.#withConnections(use, (connection) =>
        runShardsPlan(plan, stmt, params, {
          connection,
          running: this.#running,
          columnCounts: this.#columnCounts,
          ...(this.#computeShard() === null ? {} : { compute: () => this.#acquireForStatement(this.#ctx.config.defaultShard) }),
        }),
      );
    } finally {
      if (plan.ddl && plan.tables.length > 0) {
        // DDL may change a table's column order: routing of INSERTs without a column list must read it again.
        this.#forgetColumns(plan.tables);
        if (this.#scope !== null) for (const t of plan.tables) this.#scope.ddlTables.add(t);
        for (const t of plan.tables) this.#scope?.columns.delete(t);
      }
    }
  }

  /** The shard compute connections come from (the default shard), or null when it is embedded (one session, not shareable). */
  #computeShard(): ShardName | null {
    const shard = this.#ctx.config.defaultShard;
    return this.#ctx.config.shards.find((s) => s.name === shard)?.kind === 'embedded' ? null : shard;
  }

  /** A SELECT PostgreSQL evaluates over copies of its tables on a compute connection (final-step/run-gather.ts). */
  #gather(plan: GatherPlan, stmt: ClientStatement): AsyncIterable<ExecEvent> {
    // An embedded shard is one session, held by this session already: no second connection to compute on.
    if (this.#computeShard() === null) throw plan.refusal;
    const shards = [...new Set(plan.tables.flatMap((t) => t.shards))];
    return this.#withConnections({ writes: false, shards, command: 'SELECT', transaction: 'auto' }, (connection) =>
      runGather(plan, stmt, { connection, running: this.#running, compute: () => this.#acquireForStatement(this.#ctx.config.defaultShard) }),
    );
  }

  #copyFrom(plan: CopyFromPlan): AsyncIterable<ExecEvent> {
    return this.#withConnections({ writes: true, shards: plan.shards, command: 'COPY', transaction: 'auto' }, (connection) =>
      copyFromEvents(plan, this.#ctx.config, (key) => this.#ctx.planner.shardForKey(plan.table, key), connection),
    );
  }

  #copyTo(plan: CopyToPlan): AsyncIterable<ExecEvent> {
    return this.#withConnections({ writes: false, shards: plan.statements.map((s) => s.shard), command: 'COPY', transaction: 'auto' }, (connection) =>
      copyOutAll(plan.statements, (s) => connection(s.shard), this.#running),
    );
  }

  /** INSERT … SELECT moving rows between shards: always in a transaction, so the rows it reads and writes commit together. */
  #insertSelect(plan: InsertSelectPlan, stmt: ClientStatement, params: readonly (string | null | undefined)[]): AsyncIterable<ExecEvent> {
    return this.#withConnections({ writes: true, shards: null, command: 'INSERT', transaction: 'always' }, (connection) =>
      insertSelectEvents(plan, stmt, params, {
        connection,
        running: this.#running,
        route: (key) => this.#ctx.planner.shardForKey(plan.table, key),
        cursorName: () => `sg_insert_select_${++this.#cursors}`,
      }),
    );
  }

  /**
   * UPDATE/DELETE whose subqueries run first: always in a transaction, so
   * the subqueries are read in the one the write commits in, and the write
   * is atomic over every shard it changes.
   */
  #subqueryWrite(plan: SubqueryWritePlan, stmt: ClientStatement, params: readonly (string | null | undefined)[]): AsyncIterable<ExecEvent> {
    const compute = this.#computeShard() === null ? {} : { compute: () => this.#acquireForStatement(this.#ctx.config.defaultShard) };
    return this.#withConnections({ writes: true, shards: null, command: plan.command, transaction: 'always' }, (connection) =>
      subqueryWriteEvents(plan, stmt, params, {
        connection,
        running: this.#running,
        columnCounts: this.#columnCounts,
        ...compute,
        gather: (g, sub) => {
          if (compute.compute === undefined) throw g.refusal;
          return runGather(g, sub, { connection: (shard) => connection(shard, false), running: this.#running, compute: compute.compute });
        },
        plan: (sql, p) => this.#plan(sql, p),
      }),
    );
  }

  // ---- describe, cancel, close ------------------------------------------

  async describe(sql: string, paramTypes: readonly number[] = []): Promise<StatementDescription> {
    let plan: Plan;
    try {
      plan = this.#ctx.planner.planToDescribe(sql, this.#routeContext());
    } catch (err) {
      plan = { kind: 'refuse', error: asPgError(err) };
    }
    const scope = this.#scope;
    const control = plan.kind === 'transaction' && (plan.op === 'commit' || plan.op === 'rollback' || plan.op === 'rollbackTo');
    if (scope?.failed && !control) throw sgError('inFailedTransaction');
    switch (plan.kind) {
      case 'show':
        shardgateSetting(this.#ctx.config, this.hint, plan.name);
        return { paramTypes: [], fields: [textField(plan.name)] };
      case 'set':
      case 'transaction':
      case 'empty':
      case 'copyFrom':
      case 'copyTo':
      case 'prepare':
      case 'deallocate':
      case 'declare':
      case 'close':
        return { paramTypes: [], fields: null };
      case 'fetch':
        return this.#sqlCursors.describeFetch(plan);
      case 'execute': {
        const prepared = this.#preparedNamed(plan.name);
        return { paramTypes: [], fields: (await this.describe(prepared.sql, prepared.paramTypes)).fields };
      }
      case 'refuse':
        // A routing error may depend on parameter values (or a table's column order) not known yet; anything else is final.
        if (plan.error.code !== '22023' && plan.needsColumns === undefined) throw plan.error;
        break;
      case 'shards':
      case 'insertSelect':
      case 'subqueryWrite':
      case 'gather':
        break;
    }
    // Inside a transaction, describe on a shard it already holds when the
    // statement's tables exist there: taking another connection would make
    // this session wait for (or, on embedded shards, time out on) a shard it
    // does not need.
    return this.#onDescribeShard(sql, (conn) => conn.describe(sql, paramTypes));
  }

  /**
   * Runs `fn` on a connection where `sql` can be described. Inside a
   * transaction: a shard it already holds when the statement's tables
   * exist there (taking another connection would make this session wait
   * for, or on embedded shards time out on, a shard it does not need).
   */
  async #onDescribeShard<T>(sql: string, fn: (conn: ShardCursor) => Promise<T>): Promise<T> {
    const scope = this.#scope;
    const candidates = this.#ctx.planner.describeShards(sql, { hintShard: this.hint });
    const shard = candidates[0]!;
    const joined = scope === null ? undefined : [...scope.seen].find((c) => candidates.includes(c.shard));
    if (joined !== undefined) return fn(joined);
    const taken: ShardCursor[] = [];
    let error: unknown;
    try {
      return await fn(await this.#acquireDirect(shard, taken));
    } catch (err) {
      error = err ?? new Error('unknown error');
      throw err;
    } finally {
      this.#releaseAll(taken, error);
    }
  }

  // ---- SQL PREPARE / EXECUTE / DEALLOCATE -------------------------------

  #preparedNamed(name: string): SqlPreparedStatement {
    const prepared = this.#prepared.get(name);
    if (prepared === undefined) throw sgError('unknownPreparedStatement', { name });
    return prepared;
  }

  /**
   * PREPARE: the statement is checked and its parameter types learnt by
   * describing it on a shard (PostgreSQL's errors for unknown types, tables
   * or columns), then kept by the session only.
   */
  async *#prepare(plan: PreparePlan, stmt: ClientStatement): AsyncGenerator<ExecEvent, void, undefined> {
    if (this.#prepared.has(plan.name)) throw sgError('duplicatePreparedStatement', { name: plan.name });
    const prepared = await this.#onDescribeShard(plan.statement, async (conn) => {
      const declared = await resolveTypes(conn, plan.paramTypes);
      const described = await conn.describe(plan.statement, declared);
      return { sql: plan.statement, paramTypes: described.paramTypes, typeSql: await typeNames(conn, described.paramTypes), statement: stmt.sql, prepareTime: new Date(), runs: 0 };
    });
    this.#prepared.set(plan.name, prepared);
    yield { kind: 'complete', tag: 'PREPARE' };
  }

  /** EXECUTE: the prepared statement runs as a statement of its own, routed by the arguments' values; its tag is the statement's. */
  async *#executePrepared(plan: ExecutePlan, stmt: ClientStatement): AsyncGenerator<ExecEvent, void, undefined> {
    const prepared = this.#preparedNamed(plan.name);
    const inner = await executeParams(plan.name, plan, prepared, stmt, (sql, s) => this.#evaluate(sql, s));
    prepared.runs++;
    yield* this.#execute(inner, null);
  }

  /** One row of values PostgreSQL computes (EXECUTE arguments), as text, on the default shard. */
  async #evaluate(sql: string, stmt: ClientStatement): Promise<(string | null)[]> {
    const shard = this.#ctx.config.defaultShard;
    const use: ConnectionUse = { command: 'EXECUTE', writes: false, shards: [shard], transaction: 'auto' };
    let row: (string | null)[] = [];
    const events = this.#withConnections(use, async function* (connection) {
      const conn = await connection(shard);
      yield* conn.query({ sql, params: stmt.params ?? [], paramFormats: stmt.paramFormats ?? [], paramTypes: stmt.paramTypes ?? [], cache: false });
    });
    for await (const ev of events) if (ev.kind === 'rows' && ev.rows.length > 0) row = ev.rows[0]!.map((v) => (v === null ? null : v.toString('utf8')));
    return row;
  }

  async *#deallocate(plan: DeallocatePlan): AsyncGenerator<ExecEvent, void, undefined> {
    if (plan.name === null) this.#prepared.clear();
    else if (!this.#prepared.delete(plan.name)) throw sgError('unknownPreparedStatement', { name: plan.name });
    yield { kind: 'complete', tag: plan.name === null ? 'DEALLOCATE ALL' : 'DEALLOCATE' };
  }

  async cancel(): Promise<void> {
    await Promise.all([...this.#running].map((c) => c.cancel().catch(() => undefined)));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const scope = this.#scope;
    this.#scope = null;
    this.#sqlCursors.closeSession();
    if (scope !== null) await scope.tx.rollback().catch((err: unknown) => this.#ctx.log('warn', 'rollback at session close failed', { err: String(err) }));
  }
}

/**
 * True when a transaction begun with `options` ('ISOLATION LEVEL REPEATABLE
 * READ, READ ONLY') reads every shard at one cut: a read-only transaction
 * with one snapshot per shard (REPEATABLE READ or SERIALIZABLE). Its
 * cross-shard reads then see each global transaction whole or not at all.
 */
export function beginsAtCut(options: string): boolean {
  return snapshotIsolation(options) && options.split(',').some((p) => p.trim() === 'READ ONLY');
}

/** The name of ShardGate's read-consistency setting. */
const READ_CONSISTENCY = 'shardgate.read_consistency';

/** 'shard': each shard's own snapshot (PostgreSQL's behaviour per shard); 'snapshot': every shard at one cut. */
export type ReadConsistency = 'shard' | 'snapshot';

/** The value of `SET shardgate.read_consistency = …` (DEFAULT/RESET → 'shard'); 22023 otherwise. */
export function parseReadConsistency(value: string | null): ReadConsistency {
  const text = value === null ? 'shard' : value.replace(/^'(.*)'$/s, '$1').toLowerCase();
  if (text === 'default' || text === 'shard') return 'shard';
  if (text === 'snapshot') return 'snapshot';
  throw sgError('invalidReadConsistency', { value: text });
}

/** True when transaction options ask for one snapshot per transaction (REPEATABLE READ or SERIALIZABLE). */
function snapshotIsolation(options: string): boolean {
  const parts = options.split(',').map((p) => p.trim());
  return parts.includes('ISOLATION LEVEL REPEATABLE READ') || parts.includes('ISOLATION LEVEL SERIALIZABLE');
}
