import type { ShardName } from '../../../src/config/names.js';
import type { CopyInSink, ShardConnector, ShardCursor, ShardEvent, ShardQuery, StatementDescription } from '../../../src/engine/shard-cursor.js';
import type { ErrorFields } from '../../../src/errors/pg-error.js';
import { PgError } from '../../../src/errors/pg-error.js';
import type { FieldDescription, TxStatus } from '../../../src/protocol/fields.js';

/**
 * The one fake the engine tests own: a ShardConnector whose cursors record
 * exactly which statement went to which shard (and on which connection) and
 * answer with scripted results. No database is involved.
 */

export type CallKind = 'query' | 'exec' | 'rows' | 'describe' | 'copyIn' | 'copyOut';

export interface LogEntry {
  readonly shard: string;
  /** Connection number (1, 2, …), to tell connections of one shard apart. */
  readonly conn: number;
  readonly kind: CallKind | 'copyData' | 'copyEnd' | 'copyFail' | 'acquire' | 'release' | 'cancel';
  readonly sql: string;
  readonly params?: readonly (Buffer | string | null)[];
  readonly resultFormats?: readonly number[];
  readonly data?: Buffer;
}

/** What a scripted statement answers. Rows are text values. */
export interface Scripted {
  readonly fields?: readonly FieldDescription[];
  readonly rows?: readonly (readonly (string | null)[])[];
  readonly tag?: string;
  readonly error?: ErrorFields;
  readonly notices?: readonly ErrorFields[];
  readonly copyData?: readonly Buffer[];
  readonly paramTypes?: readonly number[];
}

export type Responder = (call: { readonly shard: string; readonly sql: string; readonly kind: CallKind; readonly params?: readonly (Buffer | string | null)[] }) => Scripted | undefined;

/** A text column description. */
export function field(name: string, typeOid = 25): FieldDescription {
  return { name, tableOid: 0, columnAttr: 0, typeOid, typeSize: -1, typeModifier: -1, format: 0 };
}

/** The command tag PostgreSQL would give a statement, by its first words. */
export function defaultTag(sql: string): string {
  const s = sql.trim().toUpperCase();
  if (s.startsWith('PREPARE TRANSACTION')) return 'PREPARE TRANSACTION';
  if (s.startsWith('COMMIT PREPARED')) return 'COMMIT PREPARED';
  if (s.startsWith('ROLLBACK PREPARED')) return 'ROLLBACK PREPARED';
  if (s.startsWith('INSERT')) return 'INSERT 0 1';
  if (s.startsWith('SELECT')) return 'SELECT 1';
  if (s.startsWith('UPDATE')) return 'UPDATE 1';
  if (s.startsWith('DELETE')) return 'DELETE 1';
  if (s.startsWith('CREATE TABLE')) return 'CREATE TABLE';
  if (s.startsWith('START')) return 'START TRANSACTION';
  if (s.startsWith('END')) return 'COMMIT';
  return s.split(/\s+/)[0] ?? '';
}

/** Splits a multi-statement string on `;` outside quotes (enough for the statements engines send). */
export function splitSql(sql: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote = false;
  for (const ch of sql) {
    if (ch === "'") quote = !quote;
    if (ch === ';' && !quote) {
      if (cur.trim() !== '') out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim() !== '') out.push(cur.trim());
  return out;
}

export class LoggingCursor implements ShardCursor {
  readonly shard: ShardName;
  readonly id: number;
  readonly settings = new Map<string, string>();
  #txStatus: TxStatus = 'I';
  readonly #owner: LoggingConnector;
  released = true;
  broken = false;

  constructor(owner: LoggingConnector, shard: ShardName, id: number) {
    this.#owner = owner;
    this.shard = shard;
    this.id = id;
  }

  get txStatus(): TxStatus {
    return this.#txStatus;
  }

  #record(kind: LogEntry['kind'], sql: string, extra: Partial<LogEntry> = {}): void {
    this.#owner.log.push({ shard: this.shard, conn: this.id, kind, sql, ...extra });
  }

  /** Runs the scripted answer of each statement in `sql`, tracking the transaction status as PostgreSQL would. */
  #answer(kind: CallKind, sql: string, params?: readonly (Buffer | string | null)[]): { scripted: Scripted; tag: string } {
    let last: { scripted: Scripted; tag: string } = { scripted: {}, tag: '' };
    for (const one of kind === 'exec' ? splitSql(sql) : [sql]) {
      const scripted = this.#owner.respond({ shard: this.shard, sql: one, kind, ...(params ? { params } : {}) }) ?? {};
      if (this.#txStatus === 'E' && !/^(ROLLBACK|COMMIT|END)\b/i.test(one)) {
        throw new PgError({ severity: 'ERROR', code: '25P02', message: 'current transaction is aborted' }, this.shard);
      }
      if (scripted.error) {
        if (this.#txStatus === 'T') this.#txStatus = 'E';
        throw new PgError(scripted.error, this.shard);
      }
      const tag = scripted.tag ?? defaultTag(one);
      const upper = one.trim().toUpperCase();
      if (/^(BEGIN|START TRANSACTION|ROLLBACK TO)/.test(upper)) this.#txStatus = 'T';
      else if (/^(COMMIT|ROLLBACK|END|ABORT|PREPARE TRANSACTION)/.test(upper) && !/^(COMMIT|ROLLBACK) PREPARED/.test(upper) && !/^ROLLBACK TO/.test(upper)) {
        this.#txStatus = 'I';
      }
      last = { scripted, tag };
    }
    return last;
  }

  query(q: ShardQuery): AsyncIterable<ShardEvent> {
    this.#record('query', q.sql, { ...(q.params ? { params: q.params } : {}), ...(q.resultFormats ? { resultFormats: q.resultFormats } : {}) });
    const run = (): ShardEvent[] => {
      const { scripted, tag } = this.#answer('query', q.sql, q.params);
      const events: ShardEvent[] = [];
      for (const n of scripted.notices ?? []) events.push({ kind: 'notice', fields: n });
      if (scripted.fields) events.push({ kind: 'fields', fields: scripted.fields });
      if (scripted.rows && scripted.rows.length > 0) {
        events.push({ kind: 'rows', rows: scripted.rows.map((r) => r.map((v) => (v === null ? null : Buffer.from(v)))) });
      }
      events.push({ kind: 'complete', tag: scripted.tag ?? (scripted.rows ? `SELECT ${scripted.rows.length}` : tag) });
      return events;
    };
    return (async function* () {
      await Promise.resolve();
      for (const ev of run()) yield ev;
    })();
  }

  async exec(sql: string): Promise<string> {
    this.#record('exec', sql);
    await Promise.resolve();
    return this.#answer('exec', sql).tag;
  }

  async rows(sql: string, params?: readonly (string | null)[]): Promise<(string | null)[][]> {
    this.#record('rows', sql, params ? { params } : {});
    await Promise.resolve();
    const { scripted } = this.#answer('rows', sql, params);
    return (scripted.rows ?? []).map((r) => [...r]);
  }

  async describe(sql: string): Promise<StatementDescription> {
    this.#record('describe', sql);
    await Promise.resolve();
    const { scripted } = this.#answer('describe', sql);
    return { paramTypes: scripted.paramTypes ?? [], fields: scripted.fields ?? null };
  }

  async copyIn(sql: string): Promise<CopyInSink> {
    this.#record('copyIn', sql);
    await Promise.resolve();
    this.#answer('copyIn', sql);
    let lines = 0;
    return {
      write: async (data: Buffer) => {
        this.#record('copyData', sql, { data });
        lines += data.toString('utf8').split('\n').length - 1;
      },
      end: async () => {
        this.#record('copyEnd', sql);
        // A shard skips the header line it was sent first.
        return `COPY ${/HEADER/i.test(sql) ? Math.max(0, lines - 1) : lines}`;
      },
      fail: async (message: string) => {
        this.#record('copyFail', message);
      },
    };
  }

  copyOut(sql: string): AsyncGenerator<Buffer, string> {
    this.#record('copyOut', sql);
    const answer = (): Scripted => this.#answer('copyOut', sql).scripted;
    return (async function* () {
      const scripted = answer();
      for (const chunk of scripted.copyData ?? []) yield chunk;
      return scripted.tag ?? `COPY ${scripted.copyData?.length ?? 0}`;
    })();
  }

  async cancel(): Promise<void> {
    this.#record('cancel', '');
  }

  release(broken = false): void {
    this.#record('release', broken ? 'broken' : '');
    if (this.released) throw new Error(`connection ${this.shard}#${this.id} released twice`);
    this.released = true;
    this.broken = broken;
    this.#owner.giveBack(this);
  }

  /** Marks the connection as handed out (by the connector). */
  take(): void {
    this.released = false;
  }
}

/** A connector over logging cursors; connections are reused (last released first), as a pool would. */
export class LoggingConnector implements ShardConnector {
  readonly shards: readonly ShardName[];
  readonly log: LogEntry[] = [];
  respond: Responder;
  readonly #idle = new Map<string, LoggingCursor[]>();
  readonly #all: LoggingCursor[] = [];
  #next = 1;

  constructor(shards: readonly string[], respond: Responder = () => undefined) {
    this.shards = shards as ShardName[];
    this.respond = respond;
  }

  async acquire(shard: ShardName): Promise<LoggingCursor> {
    if (!this.shards.includes(shard)) throw new PgError({ severity: 'ERROR', code: '22023', message: `unknown shard ${shard}` });
    const idle = this.#idle.get(shard) ?? [];
    const conn = idle.pop() ?? new LoggingCursor(this, shard, this.#next++);
    if (!this.#all.includes(conn)) this.#all.push(conn);
    conn.take();
    this.log.push({ shard, conn: conn.id, kind: 'acquire', sql: '' });
    return conn;
  }

  giveBack(conn: LoggingCursor): void {
    if (conn.broken) return;
    const idle = this.#idle.get(conn.shard) ?? [];
    idle.push(conn);
    this.#idle.set(conn.shard, idle);
  }

  /** Connections handed out and not released yet. */
  inUse(): LoggingCursor[] {
    return this.#all.filter((c) => !c.released);
  }

  stats(): ReadonlyMap<ShardName, { inUse: number; idle: number; waiting: number }> {
    return new Map(this.shards.map((s) => [s, { inUse: this.inUse().filter((c) => c.shard === s).length, idle: this.#idle.get(s)?.length ?? 0, waiting: 0 }]));
  }

  async close(): Promise<void> {}

  /** Forgets what was logged so far (start-up housekeeping, for instance). */
  clear(): void {
    this.log.length = 0;
  }

  /** Statements sent to a shard (query, exec split into single statements, copy starts), in order. */
  statements(shard: string): string[] {
    return this.log
      .filter((e) => e.shard === shard && (e.kind === 'query' || e.kind === 'exec' || e.kind === 'copyIn' || e.kind === 'copyOut'))
      .flatMap((e) => (e.kind === 'exec' ? splitSql(e.sql) : [e.sql]));
  }

  /** Shards that received any statement. */
  touched(): string[] {
    return [...new Set(this.log.filter((e) => e.kind !== 'acquire' && e.kind !== 'release').map((e) => e.shard))];
  }
}
