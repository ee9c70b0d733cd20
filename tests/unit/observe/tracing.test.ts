import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { context, SpanStatusCode, trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { loadModule, parseSync } from 'libpg-query';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ATTR_DB_SYSTEM,
  ATTR_GID,
  ATTR_SHARD,
  parseSqlCommenter,
  parseTraceparent,
  shardgateAttributes,
  sqlcommenterTag,
  traceContextFromSql,
  withSpan,
  withSqlComment,
} from '../../../src/observe/tracing.js';

const exporter = new InMemorySpanExporter();
const contextManager = new AsyncLocalStorageContextManager();

beforeAll(async () => {
  contextManager.enable();
  context.setGlobalContextManager(contextManager);
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
  await loadModule();
});
afterAll(() => {
  trace.disable();
  context.disable();
});
beforeEach(() => exporter.reset());

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';

describe('withSpan', () => {
  it('nests spans as parent and child through awaits and parallel branches, with gid and shard attributes', async () => {
    await withSpan('statement', shardgateAttributes({ gid: 'sg_gw1_s0_1' }), async () => {
      await new Promise((r) => setTimeout(r, 1));
      await Promise.all(
        ['s0', 's1'].map((shard) =>
          withSpan('shard', shardgateAttributes({ gid: 'sg_gw1_s0_1', shard }), async () => {
            await withSpan('prepare', {}, () => 1);
          }),
        ),
      );
    });
    const spans = exporter.getFinishedSpans();
    const byName = (n: string) => spans.filter((s) => s.name === n);
    const [root] = byName('statement');
    expect(root?.parentSpanContext).toBeUndefined();
    expect(root?.attributes[ATTR_GID]).toBe('sg_gw1_s0_1');
    expect(root?.attributes[ATTR_DB_SYSTEM]).toBe('postgresql');
    const shards = byName('shard');
    expect(shards.map((s) => s.attributes[ATTR_SHARD]).sort()).toEqual(['s0', 's1']);
    for (const s of shards) expect(s.parentSpanContext?.spanId).toBe(root!.spanContext().spanId);
    const prepares = byName('prepare');
    expect(prepares).toHaveLength(2);
    expect(prepares.map((p) => p.parentSpanContext?.spanId).sort()).toEqual(shards.map((s) => s.spanContext().spanId).sort());
    for (const s of spans) expect(s.spanContext().traceId).toBe(root!.spanContext().traceId);
  });

  it('records a failure on the span and rethrows the same error', async () => {
    const boom = new Error('boom');
    await expect(withSpan('failing', {}, async () => Promise.reject(boom))).rejects.toBe(boom);
    const [span] = exporter.getFinishedSpans();
    expect(span?.status.code).toBe(SpanStatusCode.ERROR);
    expect(span?.events.some((e) => e.name === 'exception')).toBe(true);
  });

  it('continues the trace named by a traceparent in the client\'s sqlcommenter comment', async () => {
    const sql = `SELECT * FROM account WHERE id = 1 /*action='pay',traceparent='00-${TRACE_ID}-${SPAN_ID}-01'*/`;
    const parent = traceContextFromSql(sql);
    expect(parent).toBeDefined();
    await withSpan('statement', {}, () => undefined, { parent: parent! });
    const [span] = exporter.getFinishedSpans();
    expect(span?.spanContext().traceId).toBe(TRACE_ID);
    expect(span?.parentSpanContext?.spanId).toBe(SPAN_ID);
    expect(span?.parentSpanContext?.isRemote).toBe(true);
  });
});

describe('traceparent and sqlcommenter parsing', () => {
  it('accepts valid traceparents and rejects malformed ones', () => {
    expect(parseTraceparent(`00-${TRACE_ID}-${SPAN_ID}-01`)).toMatchObject({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1, isRemote: true });
    expect(parseTraceparent(`01-${TRACE_ID}-${SPAN_ID}-00-future`)).toMatchObject({ traceFlags: 0 });
    for (const bad of [
      '',
      `00-${TRACE_ID}-${SPAN_ID}`,
      `ff-${TRACE_ID}-${SPAN_ID}-01`,
      `00-${'0'.repeat(32)}-${SPAN_ID}-01`,
      `00-${TRACE_ID}-${'0'.repeat(16)}-01`,
      `00-${TRACE_ID.toUpperCase()}-${SPAN_ID}-01`,
      `00-${TRACE_ID}-${SPAN_ID}-01-extra`,
      `00-${TRACE_ID}x-${SPAN_ID}-01`,
    ]) {
      expect(parseTraceparent(bad), bad).toBeNull();
    }
  });

  it('reads URL-encoded, escaped values and ignores statements without a usable comment', () => {
    expect(parseSqlCommenter(`SELECT 1 /*a='x%2Fy',b='it\\'s',c%20d='%27'*/;`)).toEqual({ a: 'x/y', b: "it's", 'c d': "'" });
    expect(parseSqlCommenter(`/*traceparent='00-${TRACE_ID}-${SPAN_ID}-01'*/ SELECT 1`)).toEqual({ traceparent: `00-${TRACE_ID}-${SPAN_ID}-01` });
    expect(parseSqlCommenter('SELECT 1')).toEqual({});
    expect(parseSqlCommenter("SELECT 1 /* just a note */")).toEqual({});
    expect(parseSqlCommenter("SELECT 1 /*a='unterminated*/")).toEqual({});
    expect(traceContextFromSql("SELECT 1 /*traceparent='garbage'*/")).toBeUndefined();
    expect(traceContextFromSql('SELECT 1')).toBeUndefined();
  });
});

describe('sqlcommenterTag', () => {
  it('sorts keys, URL-encodes and single-quotes values, and round-trips through the parser', () => {
    const tag = sqlcommenterTag({ gid: 'sg_gw1_s0_42', action: "it's a/b c" });
    expect(tag).toBe("/*action='it%27s%20a%2Fb%20c',gid='sg_gw1_s0_42'*/");
    expect(parseSqlCommenter(`SELECT 1 ${tag}`)).toEqual({ gid: 'sg_gw1_s0_42', action: "it's a/b c" });
    expect(sqlcommenterTag({})).toBe('');
    expect(withSqlComment('SELECT 1', {})).toBe('SELECT 1');
  });

  const hostile = [
    "*/ DROP TABLE account; /*",
    "'; DROP TABLE account; --",
    '/* nested /* comment */',
    '\\\'*/ SELECT pg_sleep(10) --',
    '\n*/\nDELETE FROM account',
    '\u0000\ud800 lone surrogate',
    '$$ dollar $tag$',
  ];

  it('cannot end the comment or change the statement, whatever the values (checked with the PostgreSQL parser)', () => {
    const plain = JSON.stringify(parseSync('SELECT 1 FROM account -- trailing'));
    for (const value of hostile) {
      const sql = withSqlComment('SELECT 1 FROM account -- trailing', { gid: value, [value]: 'k' });
      expect(JSON.stringify(parseSync(sql)), value).toBe(plain);
      const body = sql.slice(sql.indexOf('/*') + 2, sql.lastIndexOf('*/'));
      expect(body).not.toMatch(/\/|\*/);
    }
  });

  it('stays inert for random values (property check against the PostgreSQL parser)', () => {
    const plain = JSON.stringify(parseSync('SELECT 2'));
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const alphabet = "*/'\\\"-;$ \n\tabc\u00e9\u20ac\ud83d\ude00%=,";
    for (let i = 0; i < 300; i++) {
      const value = Array.from({ length: rand(20) }, () => alphabet[rand(alphabet.length)]).join('');
      const sql = withSqlComment('SELECT 2', { traceparent: value, gid: value });
      expect(JSON.stringify(parseSync(sql)), JSON.stringify(value)).toBe(plain);
      // Lone surrogates arrive as U+FFFD, exactly as a UTF-8 round trip gives them.
      expect(parseSqlCommenter(sql).gid).toBe(Buffer.from(value, 'utf8').toString('utf8'));
    }
  });
});
