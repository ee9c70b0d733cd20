import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import type { ShardName } from '../config/names.js';
import { sgError } from '../errors/catalogue.js';
import { PgError } from '../errors/pg-error.js';
import { encodeFrontendMany, MessageReader, type FrontendMessage, type MessageRun, type RawMessage } from '../protocol/index.js';
import { BackendConnection } from './backend-connection.js';
import type { Transport } from './transport.js';

/** Prepared transactions an embedded shard allows (PGlite starts with 0, which forbids PREPARE TRANSACTION). */
export const EMBEDDED_MAX_PREPARED_TRANSACTIONS = 64;

/**
 * Sent after every Query and Execute. A COPY FROM STDIN left waiting for data
 * when a request's input ends stops PGlite for good, so the COPY must fail
 * instead; outside COPY mode the server ignores CopyFail (the protocol says so).
 */
const COPY_GUARD: FrontendMessage = { type: 'CopyFail', message: 'COPY FROM STDIN must be run with copyIn()' };

/**
 * PGlite's single session as a transport: messages are queued by `send` and
 * run together, synchronously, by `execProtocolRaw` when a reply is awaited.
 * Nothing can interrupt a request once it runs (no cancel).
 */
export class PgliteTransport implements Transport {
  readonly kind = 'embedded';
  readonly #shard: ShardName;
  readonly #db: PGlite;
  readonly #reader = new MessageReader();
  #pending: FrontendMessage[] = [];
  #alive = true;
  #closing: Promise<void> | null = null;
  readonly #deathListeners: (() => void)[] = [];

  constructor(shard: ShardName, db: PGlite) {
    this.#shard = shard;
    this.#db = db;
  }

  get alive(): boolean {
    return this.#alive;
  }

  send(messages: readonly FrontendMessage[]): void {
    // A request carrying its own COPY data runs the COPY to its end: no guard.
    const feedsCopy = messages.some((m) => m.type === 'CopyData' || m.type === 'CopyDone');
    for (const m of messages) {
      this.#pending.push(m);
      if (!feedsCopy && (m.type === 'Query' || m.type === 'Execute')) this.#pending.push(COPY_GUARD);
    }
  }

  drained(): Promise<void> {
    return Promise.resolve();
  }

  tryRead(): RawMessage | null {
    return this.#reader.next();
  }

  tryReadRun(code: number, maxBytes: number): MessageRun | null {
    return this.#reader.nextRun(code, maxBytes);
  }

  async read(): Promise<RawMessage> {
    const buffered = this.#reader.next();
    if (buffered !== null) return buffered;
    if (!this.#alive) throw this.#unavailable('the embedded shard is closed');
    if (this.#pending.length === 0) throw new PgError(sgError('internal', { reason: 'waiting for a reply to nothing' }).fields, this.#shard);
    const request = encodeFrontendMany(this.#pending);
    this.#pending = [];
    let reply: Uint8Array;
    try {
      reply = await this.#db.execProtocolRaw(request);
    } catch (err) {
      // PGlite exits on fatal errors; its state is gone, only a reopen helps.
      this.#alive = false;
      for (const l of this.#deathListeners) l();
      throw this.#unavailable(`PGlite failed: ${(err as Error).message}`);
    }
    this.#reader.push(Buffer.from(reply.buffer, reply.byteOffset, reply.byteLength));
    const msg = this.#reader.next();
    if (msg === null) throw new PgError(sgError('internal', { reason: 'PGlite sent no reply' }).fields, this.#shard);
    return msg;
  }

  /** Embedded shards run each request to its end; there is nothing to cancel. */
  async cancel(): Promise<void> {}

  /** Closes the PGlite instance (flushing its files). */
  close(): Promise<void> {
    this.#alive = false;
    this.#closing ??= this.#db.close().catch(() => undefined);
    return this.#closing;
  }

  get buffered(): number {
    return this.#reader.buffered;
  }

  onDeath(listener: () => void): void {
    this.#deathListeners.push(listener);
  }

  #unavailable(reason: string): PgError {
    return new PgError(sgError('shardUnavailable', { shard: this.#shard, reason }).fields, this.#shard);
  }
}

/** ParameterStatus values a PostgreSQL server reports at start-up, read from an embedded shard's settings. */
const REPORTED_SETTINGS = [
  'server_version',
  'server_encoding',
  'client_encoding',
  'DateStyle',
  'IntervalStyle',
  'TimeZone',
  'integer_datetimes',
  'standard_conforming_strings',
  'is_superuser',
  'session_authorization',
  'application_name',
];

/**
 * Opens (creating if needed) the PGlite database in `dir` as one shard
 * session. Guarantees max_prepared_transactions > 0: on first creation it is
 * set with ALTER SYSTEM and the database reopened, since the setting only
 * takes effect at start. Prepared transactions left by a killed process are
 * still there after opening; resolving them is the transaction manager's job.
 */
export async function openEmbedded(shard: ShardName, dir: string, opts: { statementCacheSize?: number } = {}): Promise<BackendConnection> {
  try {
    await mkdir(dir, { recursive: true });
    let db = await PGlite.create({ dataDir: dir });
    if ((await maxPrepared(db)) === 0) {
      await db.exec(`ALTER SYSTEM SET max_prepared_transactions = ${EMBEDDED_MAX_PREPARED_TRANSACTIONS}`);
      await db.close();
      db = await PGlite.create({ dataDir: dir });
      if ((await maxPrepared(db)) === 0) {
        await db.close();
        throw new Error('max_prepared_transactions stays 0 after ALTER SYSTEM');
      }
    }
    const res = await db.query<{ name: string; setting: string }>('SELECT name, setting FROM pg_settings WHERE name = ANY($1)', [REPORTED_SETTINGS]);
    const parameters = new Map(res.rows.map((r) => [r.name, r.setting]));
    return new BackendConnection({ shard, transport: new PgliteTransport(shard, db), parameters, statementCacheSize: opts.statementCacheSize });
  } catch (err) {
    if (err instanceof PgError && err.code === '08006') throw err;
    const reason = `cannot open embedded database ${dir}: ${err instanceof Error ? err.message : String(err)}`;
    throw new PgError(sgError('shardUnavailable', { shard, reason }).fields, shard);
  }
}

async function maxPrepared(db: PGlite): Promise<number> {
  const res = await db.query<{ max_prepared_transactions: string }>('SHOW max_prepared_transactions');
  return Number(res.rows[0]?.max_prepared_transactions ?? 0);
}
