import type { ShardName } from '../config/names.js';
import type { FieldDescription, FormatCode, RawRow } from '../protocol/fields.js';
import type { ErrorFields } from '../errors/pg-error.js';
import type { MergeSpec, ShardStatement, ShardsPlan } from '../planner/plan.js';
import { combineTags } from '../planner/command-tag.js';
import { mergedFields, mergeStreams, resolveMergeSpec } from './merge/merge-streams.js';
import { asPgError, combineErrors } from './combine-errors.js';
import type { ClientStatement, ExecEvent } from './session-api.js';
import type { ShardCursor, ShardEvent, ShardQuery } from './shard-cursor.js';
import { shardTextRules, specComparesValues } from './shard-text-rules.js';
import { TEXT_AS_BYTES, type TextRules } from './values.js';
import { needsFinalStep } from './final-step/final-step-sql.js';
import { runFinalStep } from './final-step/run-final-step.js';

/** What running a plan needs from the session. */
export interface ShardRunContext {
  /** The connection a shard's statement runs on: a transaction participant, or one acquired for this statement. */
  readonly connection: (shard: ShardName) => Promise<ShardCursor>;
  /** Connections with a statement in flight, for cancel(). */
  readonly running: Set<ShardCursor>;
  /** Column counts of shard statements already described (for binary results of merged queries). */
  readonly columnCounts: Map<string, number>;
  /**
   * A compute connection for the final step (`final-step/`): outside the
   * client's transaction, with the session's settings applied; released by
   * the caller of this function's result with `release()`. Absent: shapes
   * that need it are refused (0A000).
   */
  readonly compute?: () => Promise<ShardCursor>;
}

const COLUMN_COUNT_CACHE = 256;

/**
 * Runs a ShardsPlan's statements, in parallel on their shards, and yields the
 * client's events:
 * - one statement: the shard's events, unchanged;
 * - several without a merge: the first shard's fields, then every shard's rows
 *   in statement order, and the tags added up (a broadcast write answers with
 *   its first shard's result only: every shard did the same thing);
 * - with a merge: the merged stream, with the visible columns only.
 * Failures of several shards are combined into one error naming each shard.
 */
export async function* runShardsPlan(
  plan: ShardsPlan,
  stmt: ClientStatement,
  params: readonly (string | null | undefined)[],
  ctx: ShardRunContext,
): AsyncGenerator<ExecEvent, void, undefined> {
  const statements = plan.statements;
  if (statements.length === 0) {
    yield { kind: 'complete', tag: plan.command };
    return;
  }
  const conns = await connectAll(statements, ctx);
  const merge = plan.explain === undefined ? plan.merge : null;
  // Before the statement: its connections are busy until the result has been read.
  const text = merge !== null && specComparesValues(merge) ? await shardTextRules(conns) : TEXT_AS_BYTES;
  // Binary results of a statement PostgreSQL combines on the final step: the shards answer in text, the final query in the client's formats.
  const finalFormats = merge === null ? null : await binaryFinalStep(merge, text, stmt, statements[0]!, conns[0]!, ctx);
  const formats = finalFormats !== null ? undefined : await resultFormats(plan.merge, stmt.resultFormats, statements[0]!, conns[0]!, stmt, ctx);
  const queries = statements.map((s) => shardQuery(s, stmt, formats));
  if (plan.explain !== undefined) {
    yield* explained(plan.explain, conns, queries, ctx);
  } else if (statements.length === 1 && plan.merge === null) {
    yield* single(conns[0]!, queries[0]!, ctx);
  } else if (plan.merge === null) {
    yield* concatenated(plan, conns, queries, ctx);
  } else {
    yield* merged(plan.merge, plan.command, conns, queries, params, ctx, text, finalFormats);
  }
}

/**
 * The client's result formats when it asks for binary results of a merged
 * statement that needs the final step (decided from the described column
 * types and the shards' text rules, as `merged` decides it), else null.
 * Shard rows are then read as text — what the final step copies into
 * PostgreSQL — and PostgreSQL itself encodes the answer in binary, so every
 * value is the bytes one server would send.
 */
async function binaryFinalStep(
  merge: MergeSpec,
  text: TextRules,
  stmt: ClientStatement,
  first: ShardStatement,
  conn: ShardCursor,
  ctx: ShardRunContext,
): Promise<readonly FormatCode[] | null> {
  const client = stmt.resultFormats;
  if (ctx.compute === undefined || client === undefined || client.every((f) => f === 0)) return null;
  const fields = await describeFirst(first, conn, stmt, ctx);
  if (fields === null) return null;
  return needsFinalStep(fields, resolveMergeSpec(merge, fields.length), text) ? client : null;
}

/** The first shard statement's columns, described with the client's parameter types; their count is kept for `resultFormats`. */
async function describeFirst(first: ShardStatement, conn: ShardCursor, stmt: ClientStatement, ctx: ShardRunContext): Promise<readonly FieldDescription[] | null> {
  const types = first.paramMap === null ? stmt.paramTypes : first.paramMap.map((i) => stmt.paramTypes?.[i] ?? 0);
  const fields = (await conn.describe(first.sql, types ?? [])).fields;
  if (ctx.columnCounts.size >= COLUMN_COUNT_CACHE) ctx.columnCounts.clear();
  ctx.columnCounts.set(first.sql, fields?.length ?? 0);
  return fields;
}

async function connectAll(statements: readonly ShardStatement[], ctx: ShardRunContext): Promise<ShardCursor[]> {
  const shards = statements.map((s) => s.shard);
  if (new Set(shards).size !== shards.length) throw asPgError(new Error('a plan ran two statements on one shard'));
  const settled = await Promise.allSettled(shards.map((s) => ctx.connection(s)));
  const failed = settled.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
  if (failed.length > 0) throw combineErrors(failed);
  return settled.map((r) => (r as PromiseFulfilledResult<ShardCursor>).value);
}

/**
 * The shard statement's parameters: the client's, picked and reordered by
 * paramMap. `relay`: the result goes to the client unchanged (see ShardQuery.relay).
 */
export function shardQuery(s: ShardStatement, stmt: ClientStatement, resultFormats: readonly FormatCode[] | undefined, relay = false): ShardQuery {
  const all = stmt.params ?? [];
  const formats = stmt.paramFormats ?? [];
  const types = stmt.paramTypes ?? [];
  if (s.paramMap === null) {
    return { sql: s.sql, params: all, paramFormats: formats, paramTypes: types, ...(resultFormats ? { resultFormats } : {}), ...(relay ? { relay } : {}) };
  }
  const map = s.paramMap;
  return {
    sql: s.sql,
    params: map.map((i) => all[i] ?? null),
    paramFormats: formats.length <= 1 ? formats : map.map((i) => formats[i] ?? 0),
    paramTypes: types.length === 0 ? [] : map.map((i) => types[i] ?? 0),
    ...(resultFormats ? { resultFormats } : {}),
    ...(relay ? { relay } : {}),
  };
}

/**
 * Result formats to ask the shards for. Without a merge, or when the client
 * wants text, the client's own list is used. A merge may add hidden columns
 * after the visible ones; Bind needs one format per column then, so the shard
 * statement is described once to learn its column count (cached by SQL text):
 * visible columns get the client's format, hidden ones text.
 */
async function resultFormats(
  merge: MergeSpec | null,
  client: readonly FormatCode[] | undefined,
  first: ShardStatement,
  conn: ShardCursor,
  stmt: ClientStatement,
  ctx: ShardRunContext,
): Promise<readonly FormatCode[] | undefined> {
  if (merge === null || client === undefined || client.every((f) => f === 0)) return client;
  const clientFormat = (i: number): FormatCode => (client.length === 1 ? client[0]! : (client[i] ?? 0));
  const count = ctx.columnCounts.get(first.sql) ?? (await describeFirst(first, conn, stmt, ctx))?.length ?? 0;
  // A negative visibleColumns (hidden columns after a `*`) counts from the end.
  const visible = resolveMergeSpec(merge, count).visibleColumns;
  if (count <= visible && client.length === 1) return client;
  return Array.from({ length: count }, (_, i) => (i < visible ? clientFormat(i) : 0));
}

async function* single(conn: ShardCursor, q: ShardQuery, ctx: ShardRunContext): AsyncGenerator<ExecEvent, void, undefined> {
  ctx.running.add(conn);
  try {
    for await (const ev of conn.query(q)) yield ev;
  } finally {
    ctx.running.delete(conn);
  }
}

/** A shard's event stream that can be read ahead once and closed early. */
class ShardStream {
  readonly conn: ShardCursor;
  readonly #it: AsyncIterator<ShardEvent>;
  #pending: Promise<IteratorResult<ShardEvent>> | null = null;
  #done = false;

  constructor(conn: ShardCursor, q: ShardQuery) {
    this.conn = conn;
    this.#it = conn.query(q)[Symbol.asyncIterator]();
  }

  /** Starts reading the next event without waiting for it (sends the statement). */
  prefetch(): Promise<IteratorResult<ShardEvent>> {
    this.#pending ??= this.#it.next();
    return this.#pending;
  }

  async next(): Promise<ShardEvent | null> {
    if (this.#done) return null;
    const r = await this.prefetch();
    this.#pending = null;
    if (r.done === true) {
      this.#done = true;
      return null;
    }
    return r.value;
  }

  /** Stops reading: waits for a read in flight, then discards the rest of the result. */
  async close(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    await this.#pending?.catch(() => undefined);
    await this.#it.return?.().catch(() => undefined);
  }
}

/** Sends every statement and waits for each shard's first answer, so errors of several shards are seen together. */
async function startAll(conns: readonly ShardCursor[], queries: readonly ShardQuery[], ctx: ShardRunContext): Promise<ShardStream[]> {
  const streams = conns.map((c, i) => new ShardStream(c, queries[i]!));
  for (const c of conns) ctx.running.add(c);
  const first = await Promise.allSettled(streams.map((s) => s.prefetch()));
  const errors = first.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
  if (errors.length > 0) {
    await Promise.all(streams.map((s) => s.close()));
    for (const c of conns) ctx.running.delete(c);
    throw combineErrors(errors);
  }
  return streams;
}

async function* concatenated(
  plan: ShardsPlan,
  conns: readonly ShardCursor[],
  queries: readonly ShardQuery[],
  ctx: ShardRunContext,
): AsyncGenerator<ExecEvent, void, undefined> {
  const streams = await startAll(conns, queries, ctx);
  // Every shard of a broadcast write did the same work: answer like one server would.
  const firstOnly = plan.route === 'broadcast-write';
  const tags: string[] = [];
  let fieldsSent = false;
  try {
    for (let i = 0; i < streams.length; i++) {
      const stream = streams[i]!;
      for (let ev = await stream.next(); ev !== null; ev = await stream.next()) {
        if (ev.kind === 'complete') {
          if (!firstOnly || i === 0) tags.push(ev.tag);
        } else if (ev.kind === 'notice') {
          yield ev;
        } else if (ev.kind === 'fields') {
          if (!fieldsSent) yield ev;
          fieldsSent = true;
        } else if (!firstOnly || i === 0) {
          yield ev;
        }
      }
      ctx.running.delete(stream.conn);
    }
  } finally {
    await Promise.all(streams.map((s) => s.close()));
    for (const s of streams) ctx.running.delete(s.conn);
  }
  yield { kind: 'complete', tag: combineTags(tags) };
}

async function* merged(
  spec: MergeSpec,
  command: string,
  conns: readonly ShardCursor[],
  queries: readonly ShardQuery[],
  params: readonly (string | null | undefined)[],
  ctx: ShardRunContext,
  text: TextRules,
  finalFormats: readonly FormatCode[] | null,
): AsyncGenerator<ExecEvent, void, undefined> {
  const streams = await startAll(conns, queries, ctx);
  const notices: ErrorFields[] = [];
  const tags: string[] = [];
  try {
    // Each shard's events up to its RowDescription; all shards describe the same columns.
    let fields: readonly FieldDescription[] | null = null;
    for (const stream of streams) {
      for (let ev = await stream.next(); ev !== null; ev = await stream.next()) {
        if (ev.kind === 'notice') notices.push(ev.fields);
        else if (ev.kind === 'complete') tags.push(ev.tag);
        if (ev.kind === 'fields') {
          fields ??= ev.fields;
          break;
        }
      }
    }
    for (const n of notices.splice(0)) yield { kind: 'notice', fields: n };
    if (fields === null) {
      yield { kind: 'complete', tag: combineTags(tags) };
      return;
    }
    const inputs = streams.map((s) => shardRows(s, notices, tags));
    if (ctx.compute !== undefined && needsFinalStep(fields, resolveMergeSpec(spec, fields.length), text)) {
      const compute = await ctx.compute();
      let broken = true;
      try {
        const steps = runFinalStep({ compute, shardQuery: queries[0]!, fields, spec: resolveMergeSpec(spec, fields.length), inputs, params, resultFormats: finalFormats ?? [] });
        let step = await steps.next();
        for (; step.done !== true; step = await steps.next()) {
          for (const n of notices.splice(0)) yield { kind: 'notice', fields: n };
          yield step.value;
        }
        broken = compute.txStatus !== 'I';
        for (const n of notices.splice(0)) yield { kind: 'notice', fields: n };
        yield { kind: 'complete', tag: command === 'SELECT' ? `SELECT ${step.value}` : combineTags(tags) };
      } finally {
        compute.release(broken);
      }
      return;
    }
    yield { kind: 'fields', fields: mergedFields(fields, spec) };
    let count = 0;
    for await (const rows of mergeStreams(inputs, fields, spec, [...params], { text })) {
      count += rows.length;
      for (const n of notices.splice(0)) yield { kind: 'notice', fields: n };
      if (rows.length > 0) yield { kind: 'rows', rows };
    }
    for (const n of notices.splice(0)) yield { kind: 'notice', fields: n };
    yield { kind: 'complete', tag: command === 'SELECT' ? `SELECT ${count}` : combineTags(tags) };
  } finally {
    await Promise.all(streams.map((s) => s.close()));
    for (const s of streams) ctx.running.delete(s.conn);
  }
}

/** The rows of one shard's stream, as batches; notices and the tag are collected on the side. */
async function* shardRows(stream: ShardStream, notices: ErrorFields[], tags: string[]): AsyncGenerator<RawRow[], void, undefined> {
  for (let ev = await stream.next(); ev !== null; ev = await stream.next()) {
    if (ev.kind === 'rows') yield [...ev.rows];
    else if (ev.kind === 'notice') notices.push(ev.fields);
    else if (ev.kind === 'complete') tags.push(ev.tag);
  }
}

/**
 * EXPLAIN across shards (planner/explain.ts): the header lines, then per
 * shard its label and its own plan, indented under it, as one "QUERY PLAN"
 * column. Shards answer in parallel; their plans are shown in statement order.
 */
async function* explained(
  explain: NonNullable<ShardsPlan['explain']>,
  conns: readonly ShardCursor[],
  queries: readonly ShardQuery[],
  ctx: ShardRunContext,
): AsyncGenerator<ExecEvent, void, undefined> {
  const streams = await startAll(conns, queries, ctx);
  const line = (text: string): RawRow => [Buffer.from(text, 'utf8')];
  let fieldsSent = false;
  try {
    for (let i = 0; i < streams.length; i++) {
      const stream = streams[i]!;
      const lines: RawRow[] = [];
      for (let ev = await stream.next(); ev !== null; ev = await stream.next()) {
        if (ev.kind === 'notice') yield ev;
        else if (ev.kind === 'fields' && !fieldsSent) {
          yield ev;
          fieldsSent = true;
          yield { kind: 'rows', rows: explain.header.map(line) };
        } else if (ev.kind === 'rows') {
          for (const row of ev.rows) lines.push([row[0] === null || row[0] === undefined ? null : Buffer.concat([Buffer.from('        '), row[0]])]);
        }
      }
      ctx.running.delete(stream.conn);
      yield { kind: 'rows', rows: [line(explain.labels[i]!), ...lines] };
    }
  } finally {
    await Promise.all(streams.map((s) => s.close()));
    for (const s of streams) ctx.running.delete(s.conn);
  }
  yield { kind: 'complete', tag: 'EXPLAIN' };
}
