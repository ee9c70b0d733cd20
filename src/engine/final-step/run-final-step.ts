import type { FieldDescription, FormatCode, RawRow } from '../../protocol/fields.js';
import type { MergeSpec } from '../../planner/plan.js';
import { sgError } from '../../errors/catalogue.js';
import { resolveCount } from '../merge/offset-limit.js';
import type { ExecEvent } from '../session-api.js';
import type { ShardCursor, ShardQuery } from '../shard-cursor.js';
import { copyTextRow, FINAL_TABLE, finalColumn, finalSql } from './final-step-sql.js';

/** Rows per COPY data message sent to the compute connection. */
const COPY_ROWS = 500;

/** What the final step reads and where it runs. */
export interface FinalStepInput {
  /** A connection of its own (not one of the client's transaction), with the session's settings applied. */
  readonly compute: ShardCursor;
  /** The shard statement as sent to the first shard: the temporary table takes its result's types and collations. */
  readonly shardQuery: ShardQuery;
  /** The shard result's columns (text format) and the spec with absolute indexes. */
  readonly fields: readonly FieldDescription[];
  readonly spec: MergeSpec;
  /** The shards' rows, read one batch at a time. */
  readonly inputs: readonly AsyncIterable<readonly RawRow[]>[];
  readonly params: readonly (string | null | undefined)[];
  /** The client's result formats, applied to the final query (the shards' rows are text). */
  readonly resultFormats: readonly FormatCode[];
}

/**
 * Combines the shards' rows on a compute connection, so that PostgreSQL
 * itself orders, groups and compares text under the shards' collations:
 * `BEGIN`, `CREATE TEMP TABLE … AS <shard query> WITH NO DATA` (the shard
 * query's column types and collations, exactly), the rows copied in with
 * COPY FROM STDIN as they arrive (one batch per input at a time; COPY waits
 * for the server to take more), then `finalSql`, whose description, rows and
 * row count are the client's answer. Always ends with ROLLBACK: the temporary
 * table never outlives the statement and the connection goes back clean.
 * Yields the final query's events (without its command tag) and returns
 * the number of rows.
 */
export async function* runFinalStep(input: FinalStepInput): AsyncGenerator<ExecEvent, number, undefined> {
  const { compute, fields, spec } = input;
  if (fields.some((f) => f.format !== 0)) {
    throw sgError('featureNotSupported', {
      feature: 'binary results of a query combined by PostgreSQL on the final step (text ordered under the shards\' collation, expressions over aggregates, sums of intervals)',
      hint: 'Ask for text results, add COLLATE "C" to the text keys, or filter by the sharding key so one shard answers.',
    });
  }
  const offset = resolveCount(spec.offset, input.params, 'OFFSET') ?? 0;
  const limit = resolveCount(spec.limit, input.params, 'LIMIT');
  const combine = finalSql(fields, spec, offset, limit, input.params);
  const columns = fields.map((_, i) => finalColumn(i)).join(', ');
  const source = input.shardQuery.sql.replace(/[\s;]+$/, '');
  let count = 0;
  let clean = false;
  await compute.exec('BEGIN');
  try {
    const create: ShardQuery = { ...input.shardQuery, sql: `CREATE TEMP TABLE ${FINAL_TABLE} (${columns}) ON COMMIT DROP AS ${source}\nWITH NO DATA`, resultFormats: [], cache: false };
    for await (const ev of compute.query(create)) void ev;
    const sink = await compute.copyIn(`COPY ${FINAL_TABLE} (${columns}) FROM STDIN`);
    try {
      for (const rows of input.inputs) {
        for await (const batch of rows) {
          for (let i = 0; i < batch.length; i += COPY_ROWS) await sink.write(Buffer.concat(batch.slice(i, i + COPY_ROWS).map(copyTextRow)));
        }
      }
    } catch (e) {
      await sink.fail('reading the shards failed');
      throw e;
    }
    await sink.end();
    for await (const ev of compute.query({ sql: combine, cache: false, resultFormats: input.resultFormats })) {
      if (ev.kind === 'rows') count += ev.rows.length;
      if (ev.kind !== 'complete') yield ev;
    }
    await compute.exec('ROLLBACK');
    clean = true;
  } finally {
    if (!clean) await compute.exec('ROLLBACK').catch(() => undefined);
  }
  return count;
}
