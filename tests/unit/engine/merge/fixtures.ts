import type { FieldDescription, FormatCode, RawRow } from '../../../../src/protocol/fields.js';
import type { MergeSpec, SortKey } from '../../../../src/planner/plan.js';
import { mergeStreams } from '../../../../src/engine/merge/merge-streams.js';
import type { MergeOptions } from '../../../../src/engine/merge/merge-streams.js';
import { TEXT_AS_BYTES } from '../../../../src/engine/values.js';

export const OID = { int4: 23, int8: 20, numeric: 1700, float8: 701, float4: 700, text: 25, date: 1082, interval: 1186, json: 114, bool: 16 } as const;

export function field(name: string, typeOid: number, format: FormatCode = 0): FieldDescription {
  return { name, tableOid: 0, columnAttr: 0, typeOid, typeSize: -1, typeModifier: -1, format };
}

/** A text-format row: strings become their UTF-8 bytes, null stays NULL. */
export function row(...values: (string | null)[]): RawRow {
  return values.map((v) => (v === null ? null : Buffer.from(v, 'utf8')));
}

export function spec(partial: Partial<MergeSpec> & { visibleColumns: number }): MergeSpec {
  return { aggregate: null, distinct: false, orderBy: [], offset: null, limit: null, ...partial };
}

export function asc(column: number): SortKey {
  return { column, descending: false, nullsFirst: false };
}

export function desc(column: number): SortKey {
  return { column, descending: true, nullsFirst: true };
}

/**
 * One shard's stream, split into batches, recording how many rows were pulled
 * and whether `return()` was called. It is its own iterator, so a `return()`
 * before the first `next()` is recorded too.
 */
export class FakeInput implements AsyncIterable<readonly RawRow[]>, AsyncIterator<readonly RawRow[]> {
  pulled = 0;
  returnCalls = 0;
  nextCalls = 0;
  readonly #batches: RawRow[][];
  readonly #failAt: number | null;
  #index = 0;

  /** `failAt`: the batch index at which next() rejects instead of answering. */
  constructor(rows: readonly RawRow[], batchSize = 2, failAt: number | null = null) {
    this.#batches = [];
    for (let i = 0; i < rows.length; i += batchSize) this.#batches.push(rows.slice(i, i + batchSize));
    this.#failAt = failAt;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<readonly RawRow[]>> {
    this.nextCalls++;
    if (this.#failAt !== null && this.#index >= this.#failAt) throw new Error('shard failed');
    const batch = this.#batches[this.#index++];
    if (batch === undefined) return { done: true, value: undefined };
    this.pulled += batch.length;
    return { done: false, value: batch };
  }

  async return(): Promise<IteratorResult<readonly RawRow[]>> {
    this.returnCalls++;
    this.#index = this.#batches.length;
    return { done: true, value: undefined };
  }
}

/** Text rows from text-format rows (null for NULL). */
export function texts(rows: readonly RawRow[]): (string | null)[][] {
  return rows.map((r) => r.map((v) => (v === null ? null : v.toString('utf8'))));
}

export async function collect(stream: AsyncIterable<readonly RawRow[]>): Promise<(string | null)[][]> {
  const out: RawRow[] = [];
  for await (const batch of stream) out.push(...batch);
  return texts(out);
}

/** Runs a merge over text inputs given as arrays of rows and returns the text rows; text compares as bytes (C collation shards) unless `options.text` says otherwise. */
export async function merge(
  inputs: readonly (readonly RawRow[])[],
  fields: readonly FieldDescription[],
  mergeSpec: MergeSpec,
  params: readonly (string | null | undefined)[] = [],
  options: MergeOptions = { text: TEXT_AS_BYTES },
): Promise<(string | null)[][]> {
  return collect(mergeStreams(inputs.map((rows) => new FakeInput(rows)), fields, mergeSpec, params, options));
}
