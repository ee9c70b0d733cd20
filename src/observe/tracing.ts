import {
  context,
  createTraceState,
  isSpanContextValid,
  ProxyTracerProvider,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type SpanContext,
} from '@opentelemetry/api';

/** Attribute names on ShardGate's spans (OpenTelemetry database conventions plus our own). */
export const ATTR_GID = 'shardgate.gid';
export const ATTR_SHARD = 'shardgate.shard';
export const ATTR_ROUTE = 'shardgate.route';
export const ATTR_DB_SYSTEM = 'db.system';
export const ATTR_DB_STATEMENT = 'db.statement';

/** Span names, one per pipeline step, so traces from every instance read the same. */
export const SPAN = {
  statement: 'shardgate.statement',
  route: 'shardgate.route',
  shardExecute: 'shardgate.shard.execute',
  prepare: 'shardgate.2pc.prepare',
  decision: 'shardgate.2pc.decision',
  commitPrepared: 'shardgate.2pc.commit_prepared',
} as const;

const TRACER_NAME = 'shardgate';

/** The attributes of a span about ShardGate work; absent values are left out, never set to ''. */
export function shardgateAttributes(fields: { gid?: string; shard?: string; statement?: string; route?: string }): Attributes {
  const attrs: Attributes = { [ATTR_DB_SYSTEM]: 'postgresql' };
  if (fields.gid !== undefined) attrs[ATTR_GID] = fields.gid;
  if (fields.shard !== undefined) attrs[ATTR_SHARD] = fields.shard;
  if (fields.route !== undefined) attrs[ATTR_ROUTE] = fields.route;
  if (fields.statement !== undefined) attrs[ATTR_DB_STATEMENT] = fields.statement;
  return attrs;
}

/** Options of `withSpan`. */
export interface SpanOptions {
  /** Parent context; default the active one (so nested withSpan calls nest). */
  readonly parent?: Context;
  /** Default INTERNAL; the statement span of a wire client is SERVER, a shard execution CLIENT. */
  readonly kind?: SpanKind;
}

/**
 * Runs `fn` inside a new active span named `name` and ends the span when `fn`
 * settles. A thrown error or rejection is recorded on the span (status ERROR)
 * and rethrown unchanged. Without a registered OpenTelemetry SDK the API hands
 * out non-recording spans, so this costs a context switch and nothing else.
 */
export async function withSpan<T>(name: string, attrs: Attributes, fn: (span: Span) => Promise<T> | T, opts: SpanOptions = {}): Promise<T> {
  const tracer = trace.getTracer(TRACER_NAME);
  const parent = opts.parent ?? context.active();
  return tracer.startActiveSpan(name, { attributes: attrs, kind: opts.kind ?? SpanKind.INTERNAL }, parent, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.recordException(err instanceof Error ? err : String(err));
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
      throw err;
    } finally {
      span.end();
    }
  });
}

/** The active span's W3C headers, or an empty object when there is no valid span context. */
export function activeTraceHeaders(ctx: Context = context.active()): { traceparent?: string; tracestate?: string } {
  const sc = trace.getSpanContext(ctx);
  if (sc === undefined || !isSpanContextValid(sc)) return {};
  const traceparent = `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
  const tracestate = sc.traceState?.serialize();
  return tracestate !== undefined && tracestate !== '' ? { traceparent, tracestate } : { traceparent };
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * Parses a W3C `traceparent` header value (trace-context level 1). Returns
 * null for anything invalid: wrong shape, upper-case hex, version ff, all-zero
 * ids, or extra fields on version 00. Later versions are read by their first
 * four fields, as the specification asks.
 */
export function parseTraceparent(value: string, tracestate?: string): SpanContext | null {
  const m = TRACEPARENT.exec(value.trim());
  if (m === null) return null;
  const [, version, traceId, spanId, flags, rest] = m as unknown as [string, string, string, string, string, string | undefined];
  if (version === 'ff' || (version === '00' && rest !== undefined)) return null;
  const sc: SpanContext = {
    traceId,
    spanId,
    traceFlags: Number.parseInt(flags, 16) & 0x01,
    isRemote: true,
    ...(tracestate !== undefined && tracestate !== '' ? { traceState: createTraceState(tracestate) } : {}),
  };
  return isSpanContextValid(sc) ? sc : null;
}

/** A context whose parent span is the remote one in `traceparent`, or undefined when it is invalid. */
export function contextFromTraceparent(traceparent: string, tracestate?: string, base: Context = context.active()): Context | undefined {
  const sc = parseTraceparent(traceparent, tracestate);
  return sc === null ? undefined : trace.setSpanContext(base, sc);
}

/**
 * The key/value pairs of an sqlcommenter comment at the end (or, as some
 * drivers place it, the start) of `sql`: `/*key='value',…*\/`, keys and values
 * URL-decoded and `\'` unescaped. Empty when there is no such comment or it is
 * malformed; a pair that does not decode is dropped rather than guessed.
 */
export function parseSqlCommenter(sql: string): Record<string, string> {
  const trimmed = sql.replace(/[\s;]+$/, '');
  let body: string | undefined;
  if (trimmed.endsWith('*/')) {
    const open = trimmed.lastIndexOf('/*');
    if (open >= 0) body = trimmed.slice(open + 2, -2);
  }
  if (body === undefined) {
    const lead = /^\s*\/\*([^]*?)\*\//.exec(sql);
    if (lead !== null) body = lead[1];
  }
  return body === undefined ? {} : parseCommentBody(body.trim());
}

function parseCommentBody(body: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < body.length) {
    const eq = body.indexOf('=', i);
    if (eq < 0 || body[eq + 1] !== "'") return {};
    const rawKey = body.slice(i, eq).trim();
    let j = eq + 2;
    let rawValue = '';
    for (; j < body.length && body[j] !== "'"; j++) {
      if (body[j] === '\\' && j + 1 < body.length) j++;
      rawValue += body[j];
    }
    if (j >= body.length) return {}; // unterminated value
    const key = safeDecode(rawKey);
    const value = safeDecode(rawValue);
    if (key !== null && value !== null && key !== '') out[key] = value;
    i = j + 1;
    while (i < body.length && body[i] === ' ') i++;
    if (i < body.length) {
      if (body[i] !== ',') return {};
      i++;
    }
  }
  return out;
}

function safeDecode(text: string): string | null {
  try {
    return decodeURIComponent(text);
  } catch {
    return null;
  }
}

/**
 * The trace context a client asked to continue with an sqlcommenter
 * `traceparent` (and optional `tracestate`) on its SQL, or undefined when the
 * statement carries none or it is invalid (the statement then starts a trace
 * of its own, or none).
 */
export function traceContextFromSql(sql: string, base: Context = context.active()): Context | undefined {
  // Cheap test first: almost every statement has no comment at all.
  if (!sql.includes('traceparent')) return undefined;
  const fields = parseSqlCommenter(sql);
  const traceparent = fields.traceparent;
  return traceparent === undefined ? undefined : contextFromTraceparent(traceparent, fields.tracestate, base);
}

/**
 * URL-encodes like encodeURIComponent and also `'`, `!`, `(`, `)` and `*`, so
 * the result contains neither a quote nor any character that could open or
 * close a comment. Lone surrogates (which encodeURIComponent rejects) become
 * U+FFFD instead of throwing.
 */
function encodeComponent(text: string): string {
  const wellFormed = text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
  return encodeURIComponent(wellFormed).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * An sqlcommenter comment for `fields`: keys sorted, keys and values
 * URL-encoded, values single-quoted. The output contains only
 * `[A-Za-z0-9%._~-]` between the delimiters, quotes, `=` and `,`: no `/`, `*`
 * or quote can come from a value, so no value can end the comment or open a
 * nested one — appending it to a statement never changes what the statement
 * does. Empty `fields` give ''.
 */
export function sqlcommenterTag(fields: Readonly<Record<string, string>>): string {
  const keys = Object.keys(fields).sort();
  if (keys.length === 0) return '';
  return `/*${keys.map((k) => `${encodeComponent(k)}='${encodeComponent(fields[k]!)}'`).join(',')}*/`;
}

/**
 * `sql` with the sqlcommenter comment for `fields` appended, on its own line so
 * that a trailing `--` comment in `sql` cannot swallow it. `sql` is returned
 * unchanged when `fields` is empty.
 */
export function withSqlComment(sql: string, fields: Readonly<Record<string, string>>): string {
  const tag = sqlcommenterTag(fields);
  return tag === '' ? sql : `${sql}\n${tag}`;
}

/**
 * True when an OpenTelemetry SDK is registered, so spans may record. Without
 * one every span is a no-op, and per-statement span work (context switches,
 * attribute objects, wrappers) can be skipped altogether.
 */
export function tracingLive(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegateTracer(TRACER_NAME) !== undefined;
}

/**
 * Starts a span that the caller ends (`span.end()`), for work that is not one
 * function call: a result streamed over many reads, or a synchronous step.
 * Parent: `opts.parent`, else the active context. Without a registered SDK
 * the span is non-recording and costs next to nothing.
 */
export function startSpan(name: string, attrs: Attributes, opts: SpanOptions = {}): Span {
  return trace.getTracer(TRACER_NAME).startSpan(name, { attributes: attrs, kind: opts.kind ?? SpanKind.INTERNAL }, opts.parent ?? context.active());
}

/** Records `err` on `span` as withSpan does (status ERROR plus the exception). */
export function recordSpanError(span: Span, err: unknown): void {
  span.recordException(err instanceof Error ? err : String(err));
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
}
