import { afterEach } from 'vitest';
import { shardName, tableName } from '../../../src/config/names.js';
import type { ShardGateConfig, TableRule } from '../../../src/config/types.js';
import { Engine } from '../../../src/engine/engine.js';
import type { Session } from '../../../src/engine/session.js';
import type { ClientStatement, ExecEvent } from '../../../src/engine/session-api.js';
import type { ErrorFields } from '../../../src/errors/pg-error.js';
import { LoggingConnector, type Responder } from './logging-cursor.js';

/** Three shards: `accounts` by id mod 3 (id 3 → s0, 1 → s1, 2 → s2), `countries` broadcast, anything else on s0. */
export function testConfig(): ShardGateConfig {
  const shards = ['s0', 's1', 's2'].map((n) => ({ kind: 'postgres' as const, name: shardName(n), url: `postgres://127.0.0.1/${n}` }));
  return {
    listen: { host: '127.0.0.1', port: 6432 },
    admin: null,
    adminToken: null,
    database: 'app',
    auth: { users: [], trust: true },
    coordinatorId: 'gw1',
    shards,
    defaultShard: shardName('s0'),
    pool: { maxPerShard: 4, acquireTimeoutMs: 1000, maxClients: 100 },
    transactions: { prepareTimeoutMs: 2000, recoveryIntervalMs: 0 },
    tables: new Map<ReturnType<typeof tableName>, TableRule>([
      [tableName('accounts'), { kind: 'mod', key: 'id' }],
      [tableName('countries'), { kind: 'broadcast' }],
    ]),
  };
}

/** An engine over logging cursors; the log starts empty (start-up housekeeping cleared). */
export async function openEngine(respond?: Responder): Promise<{ engine: Engine; connector: LoggingConnector }> {
  const connector = new LoggingConnector(['s0', 's1', 's2'], respond);
  const engine = await Engine.open(testConfig(), { connector, transactions: { deadlockCheckMs: 0 } });
  connector.clear();
  return { engine, connector };
}

/**
 * For a test file whose tests each open one engine: `setup()` opens it (over
 * logging cursors answering with `respond`), `engine()` returns it, and the
 * engine is closed after each test.
 */
export function enginePerTest(): { setup(respond?: Responder): Promise<LoggingConnector>; engine(): Engine } {
  let current: Engine | undefined;
  afterEach(async () => {
    await current?.close();
    current = undefined;
  });
  return {
    async setup(respond) {
      const opened = await openEngine(respond);
      current = opened.engine;
      return opened.connector;
    },
    engine() {
      if (current === undefined) throw new Error('call setup() first');
      return current;
    },
  };
}

export interface Outcome {
  readonly events: ExecEvent[];
  readonly rows: (string | null)[][];
  readonly tag: string | undefined;
  readonly notices: ErrorFields[];
}

/** Runs one statement to the end and collects what it produced. */
export async function run(session: Session, sql: string | ClientStatement, params?: readonly (string | null)[]): Promise<Outcome> {
  const stmt: ClientStatement = typeof sql === 'string' ? { sql, ...(params ? { params: params.map((p) => (p === null ? null : Buffer.from(p))) } : {}) } : sql;
  const events: ExecEvent[] = [];
  for await (const ev of session.execute(stmt)) events.push(ev);
  return {
    events,
    rows: events.flatMap((e) => (e.kind === 'rows' ? e.rows.map((r) => r.map((v) => (v === null ? null : v.toString()))) : [])),
    tag: events.find((e) => e.kind === 'complete')?.kind === 'complete' ? (events.find((e) => e.kind === 'complete') as { tag: string }).tag : undefined,
    notices: events.flatMap((e) => (e.kind === 'notice' ? [e.fields] : [])),
  };
}

/** Rejection code of a statement that must fail. */
export async function failure(session: Session, sql: string): Promise<string> {
  try {
    await run(session, sql);
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
  throw new Error(`expected ${sql} to fail`);
}
