import type { ClientStatement, EngineSession } from '../engine/session-api.js';
import type { StatementDescription } from '../engine/shard-cursor.js';
import { sgError } from '../errors/index.js';
import type { FieldDescription, FormatCode } from '../protocol/fields.js';
import type { FrontendMessage } from '../protocol/messages.js';
import { StatementRun } from './statement-run.js';
import type { RunIO } from './statement-run.js';

type Msg<T extends FrontendMessage['type']> = Extract<FrontendMessage, { type: T }>;

/** A statement from Parse (F). */
interface PreparedStatement {
  readonly sql: string;
  /** Types as Parse declared them (0 = unspecified). */
  readonly paramTypes: readonly number[];
  description: StatementDescription | null;
  /** DescriptionCache generation the description belongs to. */
  generation: number;
  /** For pg_prepared_statements: when Parse came, and the Binds since. */
  readonly prepareTime: Date;
  binds: number;
}

/** A portal from Bind (F): a statement with its parameters, run by Execute in steps. */
interface Portal {
  readonly statement: PreparedStatement;
  readonly execution: ClientStatement;
  run: StatementRun | null;
}

/**
 * The extended-query protocol state of one connection: prepared statements
 * and portals, named and unnamed, with PostgreSQL's rules — a new Parse or
 * Bind replaces the unnamed one, a named one must be closed before its name is
 * reused, portals close at Sync outside a transaction block. Errors are thrown
 * as PgError; the connection then sends ErrorResponse and skips to Sync.
 */
export class ExtendedQuery {
  readonly #io: RunIO;
  readonly #session: EngineSession;
  readonly #statements = new Map<string, PreparedStatement>();
  readonly #portals = new Map<string, Portal>();

  constructor(io: RunIO, session: EngineSession) {
    this.#io = io;
    this.#session = session;
    session.useProtocolStatements?.(() =>
      [...this.#statements].filter(([name]) => name !== '').map(([name, st]) => ({ name, sql: st.sql, paramTypes: st.description?.paramTypes ?? st.paramTypes, prepareTime: st.prepareTime, binds: st.binds })),
    );
  }

  parse(msg: Msg<'Parse'>): void {
    if (msg.name !== '' && this.#statements.has(msg.name)) throw sgError('duplicatePreparedStatement', { name: msg.name });
    this.#statements.set(msg.name, { sql: msg.sql, paramTypes: msg.paramTypes, description: null, generation: -1, prepareTime: new Date(), binds: 0 });
    this.#io.out.send({ type: 'ParseComplete' });
  }

  /** Binds a portal; a promise only when the statement must be described first or an open portal closed. */
  bind(msg: Msg<'Bind'>): Promise<void> | void {
    const statement = this.#statements.get(msg.statement);
    if (statement === undefined) throw sgError('unknownPreparedStatement', { name: msg.statement });
    if (msg.portal !== '' && this.#portals.has(msg.portal)) throw sgError('duplicatePortal', { name: msg.portal });
    if (msg.paramFormats.length > 1 && msg.paramFormats.length !== msg.params.length) {
      throw sgError('bindFormatCount', { formats: msg.paramFormats.length, params: msg.params.length });
    }
    const known = this.#knownParamTypes(statement, msg.params.length);
    const replaced = this.#portals.get(msg.portal);
    if (known === null || (replaced?.run !== null && replaced?.run.done === false)) return this.#bindSlowly(msg, statement);
    checkParamCount(msg, known);
    this.#portals.delete(msg.portal);
    this.#setPortal(msg, statement, known);
  }

  async #bindSlowly(msg: Msg<'Bind'>, statement: PreparedStatement): Promise<void> {
    const paramTypes = await this.#paramTypes(statement, msg.params.length);
    checkParamCount(msg, paramTypes);
    await this.#dropPortal(msg.portal);
    this.#setPortal(msg, statement, paramTypes);
  }

  #setPortal(msg: Msg<'Bind'>, statement: PreparedStatement, paramTypes: readonly number[]): void {
    statement.binds++;
    this.#portals.set(msg.portal, {
      statement,
      execution: {
        sql: statement.sql,
        params: msg.params,
        paramFormats: msg.paramFormats,
        paramTypes,
        resultFormats: msg.resultFormats,
        // Sent to the client as protocol messages: a result from one shard may pass as its bytes.
        relay: true,
      },
      run: null,
    });
    this.#io.out.send({ type: 'BindComplete' });
  }

  async describe(msg: Msg<'Describe'>): Promise<void> {
    const out = this.#io.out;
    if (msg.target === 'S') {
      const statement = this.#statements.get(msg.name);
      if (statement === undefined) throw sgError('unknownPreparedStatement', { name: msg.name });
      const description = await this.#describe(statement);
      out.send({ type: 'ParameterDescription', types: description.paramTypes });
      // A statement is not bound yet: its columns are described in text format.
      out.send(description.fields === null ? { type: 'NoData' } : { type: 'RowDescription', fields: withFormats(description.fields, []) });
      return;
    }
    const portal = this.#portal(msg.name);
    const description = await this.#describe(portal.statement);
    const formats = portal.execution.resultFormats ?? [];
    out.send(description.fields === null ? { type: 'NoData' } : { type: 'RowDescription', fields: withFormats(description.fields, formats) });
  }

  async execute(msg: Msg<'Execute'>): Promise<void> {
    const portal = this.#portal(msg.portal);
    if (portal.run === null) {
      if (portal.execution.sql.trim() === '') {
        this.#io.out.send({ type: 'EmptyQueryResponse' });
        return;
      }
      portal.run = new StatementRun(this.#io, this.#session.execute(portal.execution), false);
    } else if (portal.run.done) {
      // Running a finished portal again yields nothing more; PostgreSQL answers with an empty completion.
      const tag = portal.run.tag ?? '';
      this.#io.out.send({ type: 'CommandComplete', tag: /^(SELECT|FETCH|MOVE) /.test(tag) ? tag.replace(/\d+$/, '0') : tag });
      return;
    }
    await portal.run.run(msg.maxRows);
  }

  async close(msg: Msg<'Close'>): Promise<void> {
    if (msg.target === 'S') this.#statements.delete(msg.name);
    else await this.#dropPortal(msg.name);
    this.#io.out.send({ type: 'CloseComplete' });
  }

  /**
   * At Sync: outside a transaction block every portal ends (PostgreSQL's
   * portals do not outlive their transaction). A promise only when one of
   * them still has a statement to close.
   */
  sync(): Promise<void> | void {
    if (this.#session.txStatus !== 'I') return;
    for (const portal of this.#portals.values()) if (portal.run !== null && !portal.run.done) return this.closePortals();
    this.#portals.clear();
  }

  /** A simple Query replaces the unnamed statement and portal, as in PostgreSQL. */
  async dropUnnamed(): Promise<void> {
    this.#statements.delete('');
    await this.#dropPortal('');
  }

  async closePortals(): Promise<void> {
    const portals = [...this.#portals.values()];
    this.#portals.clear();
    for (const portal of portals) await portal.run?.close();
  }

  #portal(name: string): Portal {
    const portal = this.#portals.get(name);
    if (portal === undefined) throw sgError('unknownPortal', { name });
    return portal;
  }

  async #dropPortal(name: string): Promise<void> {
    const portal = this.#portals.get(name);
    if (portal === undefined) return;
    this.#portals.delete(name);
    await portal.run?.close();
  }

  /**
   * Parameter types for Bind when known without asking a shard, else null.
   * A statement without any '$' has no parameters, so statements like BEGIN
   * or SET bound without parameters need no describe.
   */
  #knownParamTypes(statement: PreparedStatement, supplied: number): readonly number[] | null {
    if (supplied === 0 && !statement.sql.includes('$') && statement.paramTypes.length === 0) return [];
    return this.#currentDescription(statement)?.paramTypes ?? null;
  }

  /** Parameter types for Bind, describing the statement when they are not known yet. */
  async #paramTypes(statement: PreparedStatement, supplied: number): Promise<readonly number[]> {
    return this.#knownParamTypes(statement, supplied) ?? (await this.#describe(statement)).paramTypes;
  }

  /** The statement's description when it is still valid (no DDL since), else null. */
  #currentDescription(statement: PreparedStatement): StatementDescription | null {
    return statement.description !== null && statement.generation === this.#io.descriptions.generation ? statement.description : null;
  }

  async #describe(statement: PreparedStatement): Promise<StatementDescription> {
    const current = this.#currentDescription(statement);
    if (current !== null) return current;
    const cache = this.#io.descriptions;
    const generation = cache.generation;
    const description = cache.get(statement.sql, statement.paramTypes) ?? (await this.#session.describe(statement.sql, statement.paramTypes));
    cache.set(statement.sql, statement.paramTypes, description);
    statement.description = description;
    statement.generation = generation;
    return description;
  }
}

/** As PostgreSQL, before the portal is replaced: Bind must supply exactly the statement's parameters. */
function checkParamCount(msg: Msg<'Bind'>, paramTypes: readonly number[]): void {
  if (paramTypes.length !== msg.params.length) {
    throw sgError('bindParameterCount', { supplied: msg.params.length, name: msg.statement, required: paramTypes.length });
  }
}

/** Result columns with Bind's result formats applied: none = text, one = for all, else one per column. */
export function withFormats(fields: readonly FieldDescription[], formats: readonly FormatCode[]): FieldDescription[] {
  return fields.map((field, i) => {
    const format: FormatCode = formats.length === 0 ? 0 : formats.length === 1 ? formats[0]! : (formats[i] ?? 0);
    return field.format === format ? field : { ...field, format };
  });
}
