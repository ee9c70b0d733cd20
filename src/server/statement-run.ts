import type { ExecEvent } from '../engine/session-api.js';
import { splitMessages } from '../protocol/index.js';
import { relayCopyIn } from './copy-relay.js';
import type { DescriptionCache } from './description-cache.js';
import type { MessageSource } from './message-source.js';
import { ClientGoneError } from './message-source.js';
import type { WireOutput } from './wire-output.js';

/** What running a statement needs from its connection. */
export interface RunIO {
  readonly out: WireOutput;
  readonly source: MessageSource;
  readonly descriptions: DescriptionCache;
}

/** Rows as the engine yields them: decoded, or (for a relayed result) the shard's DataRow messages as bytes. */
type RowBatch = Extract<ExecEvent, { kind: 'rows' | 'frames' }>;

/** How a call to {@link StatementRun.run} ended: the statement finished, or it stopped at `maxRows` (PortalSuspended sent). */
export type RunResult = 'complete' | 'suspended';

/**
 * One statement's execution, translating the engine's events into backend
 * messages. The simple protocol runs it to the end at once; a portal runs it
 * in steps of `maxRows` rows, keeping the engine's iterator open between
 * Execute messages. Rows are pulled from the engine only as fast as the
 * client's socket takes them (see WireOutput.maybeFlush), so a slow reader
 * holds the whole pipeline back instead of filling memory.
 */
export class StatementRun {
  readonly #io: RunIO;
  readonly #events: AsyncIterator<ExecEvent>;
  /** Simple Query sends RowDescription for 'fields'; Execute does not (Describe did). */
  readonly #sendsRowDescription: boolean;
  /** Rows of a batch left over when `maxRows` cut it. */
  #leftover: RowBatch | null = null;
  #inCopyOut = false;
  #done = false;
  #tag: string | undefined;
  /** The statement stopped at an Execute's row limit at least once. */
  #suspended = false;

  constructor(io: RunIO, events: AsyncIterable<ExecEvent>, sendsRowDescription: boolean) {
    this.#io = io;
    this.#events = events[Symbol.asyncIterator]();
    this.#sendsRowDescription = sendsRowDescription;
  }

  /** True once the statement's events were consumed to the end, it failed, or was closed. */
  get done(): boolean {
    return this.#done;
  }

  /** The CommandComplete tag, once complete. */
  get tag(): string | undefined {
    return this.#tag;
  }

  /**
   * Forwards events until the statement completes or `maxRows` rows (0 = no
   * limit) were sent. Errors are thrown (as the engine threw them); the engine's
   * iterator is closed before an error leaves this method.
   */
  async run(maxRows: number): Promise<RunResult> {
    const limit = maxRows > 0 ? maxRows : Number.POSITIVE_INFINITY;
    let sent = 0;
    try {
      if (this.#leftover !== null) {
        const rows = this.#leftover;
        this.#leftover = null;
        sent = this.#sendRows(rows, sent, limit);
        if (sent >= limit) return this.#suspend();
        await this.#io.out.maybeFlush();
      }
      for (;;) {
        const next = await this.#events.next();
        // The iteration ends after 'complete': the engine commits and releases connections
        // in the rest of its generator, so it is always consumed to the end.
        if (next.done === true) {
          this.#done = true;
          return 'complete';
        }
        const event = next.value;
        switch (event.kind) {
          case 'rows':
          case 'frames': {
            sent = this.#sendRows(event, sent, limit);
            // PostgreSQL too reports PortalSuspended once maxRows rows were sent, even if none follow.
            if (sent >= limit) return this.#suspend();
            const flushing = this.#io.out.maybeFlush();
            if (flushing !== undefined) await flushing;
            if (this.#io.out.closed) throw new ClientGoneError();
            break;
          }
          case 'complete':
            // A portal run in several Executes: PostgreSQL's SELECT tag counts the rows of the last one.
            this.#complete(this.#suspended && /^SELECT \d+$/.test(event.tag) ? `SELECT ${sent}` : event.tag);
            break;
          case 'empty':
            this.#io.out.send({ type: 'EmptyQueryResponse' });
            break;
          case 'fields':
            // A relayed RowDescription goes out as the shard sent it.
            if (!this.#sendsRowDescription) break;
            if (event.frame !== undefined) this.#io.out.sendRaw(event.frame);
            else this.#io.out.send({ type: 'RowDescription', fields: event.fields });
            break;
          default:
            await this.#forward(event);
        }
      }
    } catch (err) {
      // The statement's own error is what the client must see, not a failure to clean up after it.
      await this.close().catch(() => undefined);
      throw err;
    }
  }

  /** Discards the rest of the statement's result (the engine stops or drains it). Safe to call twice. */
  async close(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    this.#leftover = null;
    await this.#events.return?.();
  }

  /**
   * Sends rows up to `limit` in total; rows beyond it wait for the next
   * Execute. Relayed rows are written as the shard's bytes, cut between
   * messages when the limit falls inside a batch. Returns the new total.
   */
  #sendRows(batch: RowBatch, sent: number, limit: number): number {
    const out = this.#io.out;
    const room = limit - sent;
    if (batch.kind === 'frames') {
      if (batch.rows <= room) {
        for (const run of batch.frames) out.sendRaw(run);
        return sent + batch.rows;
      }
      const { head, tail } = splitMessages(batch.frames, room);
      for (const run of head) out.sendRaw(run);
      this.#leftover = { kind: 'frames', frames: tail, rows: batch.rows - room };
      return limit;
    }
    const rows = batch.rows;
    if (rows.length <= room) {
      for (const row of rows) out.sendRow(row);
      return sent + rows.length;
    }
    for (let i = 0; i < room; i++) out.sendRow(rows[i]!);
    this.#leftover = { kind: 'rows', rows: rows.slice(room) };
    return limit;
  }

  #suspend(): RunResult {
    this.#suspended = true;
    this.#io.out.send({ type: 'PortalSuspended' });
    return 'suspended';
  }

  #complete(tag: string): void {
    const out = this.#io.out;
    if (this.#inCopyOut) out.send({ type: 'CopyDone' });
    this.#inCopyOut = false;
    out.send({ type: 'CommandComplete', tag });
    this.#io.descriptions.noteCommand(tag);
    this.#tag = tag;
  }

  async #forward(event: Exclude<ExecEvent, { kind: 'rows' | 'frames' | 'complete' | 'empty' | 'fields' }>): Promise<void> {
    const out = this.#io.out;
    switch (event.kind) {
      case 'notice':
        out.send({ type: 'NoticeResponse', fields: event.fields });
        return;
      case 'parameterStatus':
        out.send({ type: 'ParameterStatus', name: event.name, value: event.value });
        return;
      case 'copyIn':
        out.send({ type: 'CopyInResponse', format: event.format, columnFormats: event.columnFormats });
        // The source flushes our output before it waits for the client's first CopyData.
        await relayCopyIn(this.#io.source, event.sink);
        return;
      case 'copyOut':
        out.send({ type: 'CopyOutResponse', format: event.format, columnFormats: event.columnFormats });
        this.#inCopyOut = true;
        return;
      case 'copyData':
        out.send({ type: 'CopyData', data: event.data });
        await out.maybeFlush();
        if (out.closed) throw new ClientGoneError();
        return;
    }
  }
}
