import type { ShardGateConfig } from '../../../src/config/types.js';
import { shardName } from '../../../src/config/names.js';
import type { ClientStatement, EngineSession, ExecEvent } from '../../../src/engine/session-api.js';
import type { CopyInSink, StatementDescription } from '../../../src/engine/shard-cursor.js';
import { PgError } from '../../../src/errors/index.js';
import type { FieldDescription, TxStatus } from '../../../src/protocol/fields.js';

/**
 * A scripted EngineSession for the wire server's tests. The SQL text selects
 * the behaviour (the engine is a separate layer; these tests check only how
 * the server translates between the wire and the session). Statements are
 * valid SQL, since the server splits simple queries with PostgreSQL's grammar:
 *   select rows(N) | select big(N, SIZE) | select echo($1, …) | select fail('CODE') |
 *   select boom() | select sleep() | select notice() | any other select: one row "1" |
 *   set … (reports TimeZone) | copy … from stdin | copy … to stdout | begin | commit | rollback |
 *   anything else completes with its first word as the tag
 */
export class FakeSession implements EngineSession {
  txStatus: TxStatus = 'I';
  readonly executed: ClientStatement[] = [];
  readonly described: string[] = [];
  readonly implicit: string[] = [];
  readonly copied: Buffer[] = [];
  copyFailed: string | null = null;
  cancels = 0;
  closed = false;
  /** Rows produced by `big`, for the backpressure test. */
  produced = 0;
  #cancelled: (() => void) | null = null;

  constructor(readonly opts: { user: string; database: string; parameters: Readonly<Record<string, string>> }) {}

  async initialParameters(): Promise<ReadonlyMap<string, string>> {
    return new Map([
      ['server_version', '15.0 (ShardGate)'],
      ['server_encoding', 'UTF8'],
      ['client_encoding', 'UTF8'],
      ['DateStyle', 'ISO, MDY'],
      ['integer_datetimes', 'on'],
      ['standard_conforming_strings', 'on'],
    ]);
  }

  execute(stmt: ClientStatement): AsyncIterable<ExecEvent> {
    this.executed.push(stmt);
    return this.#tracked(stmt);
  }

  /** SQL of the statements whose events ended (ran out, failed, or were closed early), in order. */
  readonly ended: string[] = [];

  async *#tracked(stmt: ClientStatement): AsyncGenerator<ExecEvent> {
    try {
      yield* this.#run(stmt);
    } finally {
      this.ended.push(stmt.sql);
    }
  }

  async describe(sql: string, paramTypes: readonly number[] = []): Promise<StatementDescription> {
    this.described.push(sql);
    const { verb, args } = parseFake(sql);
    if (verb === 'fail') throw failure(args[0] ?? '42601');
    const count = Math.max(0, ...[...sql.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
    const types = Array.from({ length: count }, (_, i) => paramTypes[i] || 25);
    return { paramTypes: types, fields: fieldsFor(sql) };
  }

  beginImplicit(): void {
    this.implicit.push('begin');
  }

  async endImplicit(ok: boolean): Promise<void> {
    this.implicit.push(ok ? 'commit' : 'rollback');
  }

  async cancel(): Promise<void> {
    this.cancels++;
    this.#cancelled?.();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.txStatus = 'I';
  }

  async *#run(stmt: ClientStatement): AsyncGenerator<ExecEvent> {
    const { verb, args } = parseFake(stmt.sql);
    const fields = fieldsFor(stmt.sql);
    if (this.txStatus === 'E' && verb !== 'rollback') throw failure('25P02');
    switch (verb) {
      case 'rows': {
        const n = Number(args[0]);
        yield { kind: 'fields', fields: fields! };
        for (let i = 1; i <= n; i += 3) {
          const batch = [];
          for (let j = i; j < i + 3 && j <= n; j++) batch.push([Buffer.from(String(j))]);
          yield { kind: 'rows', rows: batch };
        }
        yield { kind: 'complete', tag: `SELECT ${n}` };
        return;
      }
      case 'big': {
        const n = Number(args[0]);
        const value = Buffer.alloc(Number(args[1]), 'x');
        yield { kind: 'fields', fields: fields! };
        for (let i = 0; i < n; i++) {
          this.produced++;
          yield { kind: 'rows', rows: [[value]] };
        }
        yield { kind: 'complete', tag: `SELECT ${n}` };
        return;
      }
      case 'echo':
        yield { kind: 'fields', fields: fields! };
        yield { kind: 'rows', rows: [stmt.params ?? []] };
        yield { kind: 'complete', tag: 'SELECT 1' };
        return;
      case 'fail':
        if (this.txStatus === 'T') this.txStatus = 'E';
        throw failure(args[0] ?? '42601');
      case 'boom':
        throw new TypeError('something broke');
      case 'sleep':
        await new Promise<void>((resolve) => (this.#cancelled = resolve));
        this.#cancelled = null;
        throw failure('57014');
      case 'notice':
        yield { kind: 'notice', fields: { severity: 'NOTICE', code: '00000', message: 'hello' } };
        yield { kind: 'complete', tag: 'DO' };
        return;
      case 'select':
        yield { kind: 'fields', fields: fields! };
        yield { kind: 'rows', rows: [[Buffer.from('1')]] };
        yield { kind: 'complete', tag: 'SELECT 1' };
        return;
      case 'set':
        yield { kind: 'parameterStatus', name: 'TimeZone', value: 'UTC' };
        yield { kind: 'complete', tag: 'SET' };
        return;
      case 'copy':
        if (/from\s+stdin/i.test(stmt.sql)) {
          yield { kind: 'copyIn', format: 0, columnFormats: [0], sink: this.#sink() };
          if (this.copyFailed !== null) throw failure('57014');
          yield { kind: 'complete', tag: `COPY ${Buffer.concat(this.copied).toString().split('\n').filter((line) => line !== '' && line !== '\\.').length}` };
        } else {
          yield { kind: 'copyOut', format: 0, columnFormats: [0] };
          for (const line of ['a\n', 'b\n', 'c\n']) yield { kind: 'copyData', data: Buffer.from(line) };
          yield { kind: 'complete', tag: 'COPY 3' };
        }
        return;
      case 'begin':
        this.txStatus = 'T';
        yield { kind: 'complete', tag: 'BEGIN' };
        return;
      case 'commit':
      case 'rollback':
        this.txStatus = 'I';
        yield { kind: 'complete', tag: verb.toUpperCase() };
        return;
      default:
        yield { kind: 'complete', tag: verb === 'insert' ? 'INSERT 0 1' : verb.toUpperCase() };
    }
  }

  #sink(): CopyInSink {
    return {
      write: async (data) => {
        this.copied.push(Buffer.from(data));
      },
      end: async () => 'COPY',
      fail: async (message) => {
        this.copyFailed = message;
      },
    };
  }
}

/** Hands out FakeSessions and keeps them for inspection. */
export class FakeEngine {
  readonly sessions: FakeSession[] = [];

  session(opts: { user: string; database: string; parameters: Readonly<Record<string, string>> }): FakeSession {
    const session = new FakeSession(opts);
    this.sessions.push(session);
    return session;
  }

  get last(): FakeSession {
    const session = this.sessions.at(-1);
    if (session === undefined) throw new Error('no session yet');
    return session;
  }
}

function failure(code: string): PgError {
  return new PgError({ severity: 'ERROR', code, message: `failed with ${code}`, position: '3', detail: 'some detail' }, 's0');
}

function field(name: string, typeOid: number): FieldDescription {
  return { name, tableOid: 0, columnAttr: 0, typeOid, typeSize: -1, typeModifier: -1, format: 0 };
}

/** `select name(args)` → the fake function and its arguments; otherwise the statement's first word. */
function parseFake(sql: string): { verb: string; args: string[] } {
  const call = /^\s*select\s+(rows|big|echo|fail|boom|sleep|notice)\s*\((.*)\)\s*$/is.exec(sql);
  if (call !== null) return { verb: call[1]!.toLowerCase(), args: call[2]!.split(',').map((a) => a.trim().replace(/^'|'$/g, '')).filter(Boolean) };
  return { verb: (sql.trim().split(/\s+/)[0] ?? '').toLowerCase(), args: [] };
}

function fieldsFor(sql: string): FieldDescription[] | null {
  const { verb } = parseFake(sql);
  if (verb === 'select') return [field('?column?', 23)];
  if (verb === 'rows') return [field('n', 23)];
  if (verb === 'big') return [field('payload', 25)];
  if (verb === 'echo') {
    const count = Math.max(1, ...[...sql.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
    return Array.from({ length: count }, (_, i) => field(`p${i + 1}`, 25));
  }
  return null;
}

/** A validated configuration for the server's tests: user app / password secret, database app, loopback port 0. */
export function testConfig(overrides: { trust?: boolean; maxClients?: number; users?: { name: string; password: string }[] } = {}): ShardGateConfig {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    admin: null,
    adminToken: null,
    database: 'app',
    auth: { users: overrides.users ?? [{ name: 'app', password: 'secret' }], trust: overrides.trust ?? false },
    coordinatorId: 'gw1',
    shards: [{ kind: 'embedded', name: shardName('s0'), dir: '/nonexistent' }],
    defaultShard: shardName('s0'),
    pool: { maxPerShard: 4, acquireTimeoutMs: 1000, maxClients: overrides.maxClients ?? 50 },
    transactions: { prepareTimeoutMs: 1000, recoveryIntervalMs: 0 },
    tables: new Map(),
  };
}
