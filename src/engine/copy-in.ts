import type { ShardName } from '../config/names.js';
import { PgError } from '../errors/index.js';
import type { CopyFromPlan } from '../planner/plan.js';
import { asPgError } from './combine-errors.js';
import { CopyFormatError, CopyRowSplitter } from './copy-rows.js';
import type { CopyInSink } from './shard-cursor.js';

/** Bytes gathered for one shard before they are sent as one CopyData. */
const FLUSH_BYTES = 64 * 1024;

/** How a CopyRouter reaches the shards. */
export interface CopyTargets {
  /** Starts `COPY … FROM STDIN` on a shard (called once per shard, on its first row). */
  readonly open: (shard: ShardName) => Promise<CopyInSink>;
  /** The shard of a row's key value (sharded tables); throws a PgError when no shard owns it. */
  readonly route: (key: string | null) => ShardName;
}

interface Target {
  readonly sink: Promise<CopyInSink>;
  chunks: Buffer[];
  size: number;
}

/**
 * The CopyInSink a client's COPY FROM STDIN data goes to. For a sharded table
 * it splits the data into rows, routes each by its key column and forwards
 * the row bytes unchanged to the owning shard (several rows per write). For a
 * broadcast table every byte goes to every shard; for an unlisted table to its
 * one shard. A header line is sent ahead of the rows on each shard, since the
 * shards run the client's COPY statement, HEADER option included.
 *
 * `write` rejects once with the first error (bad data, a key no shard owns, a
 * shard's error); after that, data is ignored, `end` rejects with the same
 * error and every shard's copy is aborted. `done` settles like `end`.
 */
export class CopyRouter implements CopyInSink {
  readonly #plan: CopyFromPlan;
  readonly #targets: CopyTargets;
  readonly #splitter: CopyRowSplitter | null;
  readonly #open = new Map<ShardName, Target>();
  #error: PgError | null = null;
  #reported = false;
  #finished = false;
  readonly #done: Promise<string>;
  #settle!: { resolve: (tag: string) => void; reject: (err: PgError) => void };

  constructor(plan: CopyFromPlan, keyColumn: number | null, targets: CopyTargets) {
    this.#plan = plan;
    this.#targets = targets;
    this.#splitter =
      plan.rule === 'sharded'
        ? new CopyRowSplitter({
            format: plan.format === 'csv' ? 'csv' : 'text',
            delimiter: plan.delimiter,
            nullString: plan.nullString,
            quote: plan.quote,
            escape: plan.escape,
            header: plan.header,
            keyColumn,
          })
        : null;
    this.#done = new Promise<string>((resolve, reject) => {
      this.#settle = { resolve, reject };
    });
    // The session awaits `done`; keep an unobserved rejection from being reported twice.
    this.#done.catch(() => undefined);
  }

  /** Settles once the copy ended: the summed `COPY n` tag, or the error. */
  get done(): Promise<string> {
    return this.#done;
  }

  async write(data: Buffer): Promise<void> {
    if (this.#error !== null || this.#finished) {
      if (this.#error !== null && !this.#reported) {
        this.#reported = true;
        throw this.#error;
      }
      return;
    }
    try {
      if (this.#splitter === null) {
        await Promise.all(this.#plan.shards.map((s) => this.#send(s, data)));
        return;
      }
      for (const row of this.#splitter.push(data)) await this.#send(this.#targets.route(row.key), row.bytes);
    } catch (err) {
      await this.#abort(err);
      this.#reported = true;
      throw this.#error;
    }
  }

  async end(): Promise<string> {
    if (this.#finished) return this.#done;
    if (this.#error !== null) {
      this.#finished = true;
      this.#settle.reject(this.#error);
      return this.#done;
    }
    try {
      if (this.#splitter !== null) for (const row of this.#splitter.finish()) await this.#send(this.#targets.route(row.key), row.bytes);
      const tags = await Promise.all(
        [...this.#open.values()].map(async (t) => {
          await this.#flush(t);
          return (await t.sink).end();
        }),
      );
      this.#finished = true;
      const counts = tags.map((t) => Number(/(\d+)$/.exec(t)?.[1] ?? 0));
      // Every shard of a broadcast table received every row: report the count once.
      const total = this.#plan.rule === 'broadcast' ? (counts[0] ?? 0) : counts.reduce((a, b) => a + b, 0);
      const tag = `COPY ${total}`;
      this.#settle.resolve(tag);
      return tag;
    } catch (err) {
      await this.#abort(err);
      this.#finished = true;
      this.#settle.reject(this.#error!);
      return this.#done;
    }
  }

  async fail(message: string): Promise<void> {
    if (this.#finished) return;
    await this.#abort(new PgError({ severity: 'ERROR', code: '57014', message: `COPY from stdin failed: ${message}` }));
    this.#finished = true;
    this.#settle.reject(this.#error!);
  }

  async #send(shard: ShardName, bytes: Buffer): Promise<void> {
    let target = this.#open.get(shard);
    if (target === undefined) {
      const sink = this.#targets.open(shard);
      sink.catch(() => undefined);
      const header = this.#splitter?.header;
      target = { sink, chunks: header ? [header] : [], size: header?.length ?? 0 };
      this.#open.set(shard, target);
    }
    target.chunks.push(bytes);
    target.size += bytes.length;
    if (target.size >= FLUSH_BYTES || this.#splitter === null) await this.#flush(target);
  }

  async #flush(t: Target): Promise<void> {
    if (t.size === 0 && t.chunks.length === 0) {
      await t.sink;
      return;
    }
    const data = t.chunks.length === 1 ? t.chunks[0]! : Buffer.concat(t.chunks);
    t.chunks = [];
    t.size = 0;
    await (await t.sink).write(data);
  }

  /** Records the first error and aborts the copy on every shard that started one. */
  async #abort(err: unknown): Promise<void> {
    if (this.#error === null) {
      this.#error =
        err instanceof CopyFormatError
          ? new PgError({ severity: 'ERROR', code: '22P04', message: err.message, where: `COPY ${this.#plan.table}` })
          : asPgError(err);
    }
    await Promise.all(
      [...this.#open.values()].map(async (t) => {
        const sink = await t.sink.catch(() => null);
        await sink?.fail(this.#error!.message).catch(() => undefined);
      }),
    );
    this.#open.clear();
  }
}
