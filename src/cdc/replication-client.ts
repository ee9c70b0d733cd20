import { openPostgresSession, parsePostgresUrl, type TcpTransport } from '../backend/index.js';
import type { ShardName } from '../config/names.js';
import { sgError } from '../errors/catalogue.js';
import { PgError } from '../errors/pg-error.js';
import { decodeBackend } from '../protocol/index.js';
import { quoteIdent, quoteLiteral } from '../tx/gid.js';
import { dateToPgTimestamp, formatLsn, INVALID_LSN, parseLsn, type Lsn } from './lsn.js';
import { decodeReplicationMessage, encodeStandbyStatusUpdate, type ReplicationMessage } from './replication-message.js';

/** Names of a shard's replication objects. */
export interface ReplicationTarget {
  readonly slot: string;
  readonly publication: string;
}

/**
 * A walsender session on one shard (startup parameter `replication=database`):
 * simple-protocol commands, then START_REPLICATION … LOGICAL in CopyBoth.
 * Reading stops while the caller does not ask for the next message, and the
 * socket then pauses (the transport's read buffer limit), which is how a slow
 * sink slows the server's sending.
 */
export class ReplicationClient {
  readonly #shard: ShardName;
  readonly #transport: TcpTransport;
  #streaming = false;

  private constructor(shard: ShardName, transport: TcpTransport) {
    this.#shard = shard;
    this.#transport = transport;
  }

  /**
   * Connects to `url` as a walsender for its database; with
   * `{ walsender: false }` as an ordinary session (for monitoring queries,
   * without taking one of the server's max_wal_senders).
   */
  static async connect(shard: ShardName, url: string, opts: { walsender?: boolean } = {}): Promise<ReplicationClient> {
    const startupParameters: Record<string, string> = { application_name: 'shardgate_cdc' };
    if (opts.walsender !== false) startupParameters.replication = 'database';
    const { transport } = await openPostgresSession(shard, parsePostgresUrl(url), { startupParameters });
    return new ReplicationClient(shard, transport);
  }

  /** IDENTIFY_SYSTEM's `xlogpos`: the server's WAL flush position now. */
  async walPosition(): Promise<Lsn> {
    const rows = await this.command('IDENTIFY_SYSTEM');
    const pos = rows[0]?.[2];
    if (pos === undefined || pos === null) throw sgError('protocolViolation', { reason: 'IDENTIFY_SYSTEM returned no xlogpos' });
    return parseLsn(pos);
  }

  /** Runs one command with the simple protocol and returns its rows (text). */
  async command(sql: string): Promise<(string | null)[][]> {
    this.#transport.send([{ type: 'Query', sql }]);
    const rows: (string | null)[][] = [];
    let error: PgError | null = null;
    for (;;) {
      const msg = decodeBackend(await this.#transport.read());
      if (msg.type === 'DataRow') rows.push(msg.values.map((v) => (v === null ? null : v.toString('utf8'))));
      else if (msg.type === 'ErrorResponse') error = new PgError(msg.fields, this.#shard);
      else if (msg.type === 'ReadyForQuery') break;
    }
    if (error !== null) throw error;
    return rows;
  }

  /**
   * Creates the publication (FOR ALL TABLES: shardgate's own tables are
   * published too, since assembly reads the decision rows, and are dropped
   * from the events) and the slot (pgoutput, two_phase) when missing.
   * Returns the slot's confirmed position, where a stream resumes.
   */
  async ensure(target: ReplicationTarget): Promise<Lsn> {
    const pubs = await this.command(`SELECT 1 FROM pg_publication WHERE pubname = ${quoteLiteral(target.publication)}`);
    if (pubs.length === 0) await this.command(`CREATE PUBLICATION ${quoteIdent(target.publication)} FOR ALL TABLES`);
    const slots = await this.command(`SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = ${quoteLiteral(target.slot)}`);
    const existing = slots[0]?.[0];
    if (existing !== undefined && existing !== null) return parseLsn(existing);
    const created = await this.command(`CREATE_REPLICATION_SLOT ${quoteIdent(target.slot)} LOGICAL pgoutput (TWO_PHASE true)`);
    return parseLsn(created[0]![1]!);
  }

  /** START_REPLICATION from `from` (the slot's confirmed position when INVALID_LSN) with protocol 3, two_phase and streaming. */
  async start(target: ReplicationTarget, from: Lsn = INVALID_LSN): Promise<void> {
    const options = `("proto_version" '3', "publication_names" ${quoteLiteral(target.publication)}, "two_phase" 'on', "streaming" 'on')`;
    this.#transport.send([{ type: 'Query', sql: `START_REPLICATION SLOT ${quoteIdent(target.slot)} LOGICAL ${formatLsn(from)} ${options}` }]);
    const raw = await this.#transport.read();
    if (raw.code === 'W') {
      this.#streaming = true;
      return;
    }
    const msg = decodeBackend(raw);
    if (msg.type === 'ErrorResponse') throw new PgError(msg.fields, this.#shard);
    throw sgError('protocolViolation', { reason: `expected CopyBothResponse after START_REPLICATION, got ${msg.type}` });
  }

  /** The next XLogData or keepalive; null once the server ended the stream. */
  async next(): Promise<ReplicationMessage | null> {
    for (;;) {
      const raw = await this.#transport.read();
      if (raw.code === 'd') return decodeReplicationMessage(raw.body);
      if (raw.code === 'c') {
        this.#streaming = false;
        return null;
      }
      const msg = decodeBackend(raw);
      if (msg.type === 'ErrorResponse') throw new PgError(msg.fields, this.#shard);
    }
  }

  /** Sends a Standby status update: `flushed` is where the slot may be advanced to. */
  status(flushed: Lsn, replyRequested = false): void {
    this.#transport.send([
      { type: 'CopyData', data: encodeStandbyStatusUpdate({ written: flushed, flushed, applied: flushed, clientTime: dateToPgTimestamp(new Date()), replyRequested }) },
    ]);
  }

  /** Ends the CopyBoth stream (CopyDone) and waits for the server to return to command mode. */
  async stop(): Promise<void> {
    if (!this.#streaming) return;
    this.#transport.send([{ type: 'CopyDone' }]);
    for (;;) {
      const raw = await this.#transport.read();
      if (raw.code === 'Z') break;
      const msg = raw.code === 'E' ? decodeBackend(raw) : null;
      if (msg?.type === 'ErrorResponse') throw new PgError(msg.fields, this.#shard);
    }
    this.#streaming = false;
  }

  /** Closes the session (Terminate). */
  async close(): Promise<void> {
    await this.#transport.close();
  }
}
