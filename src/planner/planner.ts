import type { A_Const, CopyStmt, DeleteStmt, DeclareCursorStmt, ExplainStmt, FuncCall, Node, SelectStmt } from 'libpg-query';
import type { ShardName, TableName } from '../config/names.js';
import type { ShardGateConfig } from '../config/types.js';
import { sgError } from '../errors/catalogue.js';
import { PgError } from '../errors/pg-error.js';
import { findRangeVars, funcName, nodeType, walkTree } from '../sql/ast.js';
import { LruCache } from '../sql/lru-cache.js';
import { deparseNode, parseSql } from '../sql/parser.js';
import type { StatementShape } from '../sql/statement-shape.js';
import { textAfterKeyword } from '../sql/text-after-keyword.js';
import { bindLiteralSlots, literalSlot, statementShape } from '../sql/statement-shape.js';
import { commandOf } from './command-tag.js';
import { ddlRouter } from './ddl-router.js';
import { explainAcrossShards } from './explain.js';
import type { WriteFallback } from './dml-routers.js';
import { SelectRouter, WriteRouter } from './dml-routers.js';
import { planSubqueryWrite } from './subquery-write.js';
import { insertRouter } from './insert-router.js';
import type { CopyToPlan, Plan } from './plan.js';
import type { RelationFacts } from './relations.js';
import { RelationCollector } from './relations.js';
import type { Params } from './routing.js';
import { RouteError, shardIndexOfKey, ShardSpace } from './routing.js';
import { closePlan, copyFromPlan, deallocatePlan, executePlan, fetchPlan, preparePlan, setPlan, transactionPlan } from './session-plans.js';
import type { RouteContext, Router, StatementInfo } from './statement-info.js';
import { buildShardsPlan, PlanMemo, refusePlan } from './statement-info.js';

export { initParser } from '../sql/parser.js';
export type { RouteContext } from './statement-info.js';

/** What the cache keeps per SQL text: everything that does not depend on parameter values. */
interface Analysis {
  /** Shard named by a `/* shardgate:shard=NAME *\/` comment. */
  readonly hint: string | null;
  /** Null for statements a hint does not apply to (transaction control, SET, COPY, empty). */
  readonly info: StatementInfo | null;
  readonly router: Router;
  /** Where a Describe can run: a shard holding every table of the statement. */
  readonly describeShard: number;
  /** Syntax error to report on Describe. */
  readonly error: PgError | null;
  /** Plans per hinted shard, made on first use (most statements never see a hint). */
  hintPlans: Map<string, Plan> | null;
}

/**
 * What the shape cache keeps per statement shape (`statementShape`): the
 * analysis of one text of the shape whose constants written as literals are
 * slots (`ValueRef` kind 'slot'), so its router routes any text of the shape
 * given that text's literal values in place of parameters. A few literals are
 * read by the analysis itself rather than by routing (the select list, ORDER
 * BY, GROUP BY, HAVING, DISTINCT, LIMIT and OFFSET of a SELECT, from which a
 * merge is planned): those are pinned, and each set of pinned values seen
 * has an analysis of its own (a variant).
 */
interface ShapeEntry {
  /** Indexes of the pinned literals; null when the shape is never served (it failed a check: every text of it takes the full path). */
  readonly pinned: readonly number[] | null;
  readonly variants: ShapeVariant[];
}

interface ShapeVariant {
  /** The pinned literals' values, joined with NUL ('' when none are pinned). */
  readonly pinnedValues: string;
  readonly hint: string | null;
  /** `sql` is the text the variant was analysed from. */
  readonly info: StatementInfo;
  readonly router: Router;
  readonly describeShard: number;
}

const HINT = /\/\*\s*shardgate:shard\s*=\s*([A-Za-z0-9_]+)\s*\*\//i;
const CACHE_ENTRIES = 10_000;
/** Statement shapes kept: far fewer than texts (each shape stands for all texts differing in constants), each heavier (it holds its parse tree). */
const SHAPE_ENTRIES = 2_000;
/** Variants (sets of pinned values) kept per shape; the oldest is forgotten. */
const SHAPE_VARIANTS = 4;
/** A shape whose texts all take the full path. */
const NOT_SHAPED: ShapeEntry = { pinned: null, variants: [] };
/** A shape seen once: its next text builds the shape's analysis. */
const SEEN_ONCE: ShapeEntry = { pinned: null, variants: [] };
/** Analysis.describeShard value: the statement's tables exist on every shard. */
const ANY_SHARD = -1;
const NO_TABLES: readonly TableName[] = [];

const fixedRouter = (plan: Plan): Router => ({ route: () => plan });

/**
 * One literal for every Analysis, so all share one hidden class: built by
 * spreading a base object, each cached entry got a hidden class (and property
 * store) of its own, about 1 kB per cached text.
 */
function analysis(hint: string | null, info: StatementInfo | null, router: Router, describeShard: number, error: PgError | null): Analysis {
  return { hint, info, router, describeShard, error, hintPlans: null };
}

/**
 * Turns SQL text plus parameter values into a Plan. Pure: no I/O. The
 * analysis of each distinct text is cached (bounded LRU), so a repeated
 * statement costs a lookup and the evaluation of its key values. A text
 * that differs from an analysed one only in its constants is planned from
 * that one's analysis without parsing (the shape cache, README "Cache"),
 * giving the plan a full analysis would. `plan` never throws for bad input:
 * syntax errors and unsupported shapes come back as RefusePlans.
 */
export class Planner {
  readonly #config: ShardGateConfig;
  readonly #space: ShardSpace;
  readonly #cache = new LruCache<string, Analysis>(CACHE_ENTRIES);
  readonly #shapes = new LruCache<string, ShapeEntry>(SHAPE_ENTRIES);
  readonly #stats = { hits: 0, misses: 0, shapeHits: 0 };

  constructor(config: ShardGateConfig) {
    this.#config = config;
    this.#space = new ShardSpace(config);
  }

  /**
   * Analysis cache counters since construction: `hits` found the exact text,
   * `shapeHits` planned a new text from the analysis of its shape (no parse),
   * `misses` parsed and analysed the text.
   */
  get cacheStats(): { readonly hits: number; readonly misses: number; readonly shapeHits: number } {
    return { hits: this.#stats.hits, misses: this.#stats.misses, shapeHits: this.#stats.shapeHits };
  }

  /**
   * The plan for one statement. `params[i]` is client parameter $i+1 as text
   * (null: SQL NULL; undefined: binary of an unknown type). Requires
   * `initParser()` to have completed.
   */
  plan(sql: string, params: Params, ctx: RouteContext): Plan {
    const a = this.#analysis(sql);
    const hint = a.info === null ? null : (a.hint ?? ctx.hintShard);
    if (hint !== null && a.info !== null) return this.#hintPlan(a, a.info, hint);
    try {
      return a.router.route(params, ctx);
    } catch (e) {
      return internalRefusal(e);
    }
  }

  /**
   * `plan` for describing a statement (no parameter values yet), never
   * reported as a routing decision by a subclass that observes `plan`:
   * describing is not running.
   */
  planToDescribe(sql: string, ctx: RouteContext): Plan {
    return Planner.prototype.plan.call(this, sql, [], ctx);
  }

  /**
   * The shard that owns a row of `table` whose sharding key has this text
   * (the key column's text output), by the same rule INSERT routing uses:
   * hash, mod or range for sharded tables; the default shard for broadcast
   * and unlisted tables (a broadcast row is written everywhere by the caller).
   * Throws a PgError (22023) for a NULL key, a non-integer under `mod`, or a
   * value no range covers.
   */
  shardForKey(table: TableName, keyText: string | null): ShardName {
    const rule = this.#config.tables.get(table);
    if (rule === undefined || rule.kind === 'broadcast') return this.#space.names[this.#space.defaultIndex] as ShardName;
    if (keyText === null) throw sgError('invalidShardingKey', { table, column: rule.key, reason: 'the sharding key is NULL' });
    try {
      return this.#space.names[shardIndexOfKey(table, rule, keyText, this.#space)] as ShardName;
    } catch (e) {
      if (e instanceof RouteError) throw e.error;
      throw e;
    }
  }

  /**
   * A shard on which every table of the statement exists, to describe it
   * without parameter values: the hinted shard, else the default shard when
   * it names unlisted or catalog tables or none, else the first shard.
   * Throws the PgError of a syntax error or of an unknown hinted shard.
   */
  describeShard(sql: string, ctx: RouteContext): ShardName {
    const a = this.#analysis(sql);
    if (a.error !== null) throw a.error;
    const hint = a.hint ?? ctx.hintShard;
    if (hint !== null) {
      const i = this.#space.indexOf(hint);
      if (i === undefined) throw this.#unknownShard(hint);
      return this.#space.names[i] as ShardName;
    }
    return this.#space.names[a.describeShard === ANY_SHARD ? 0 : a.describeShard] as ShardName;
  }

  /**
   * Every shard on which the statement can be described (its tables exist
   * there with the same definition): all shards for sharded and broadcast
   * tables, else the one `describeShard` names. A session inside a
   * transaction describes on a shard it already holds, so it never waits for
   * a connection it does not need.
   */
  describeShards(sql: string, ctx: RouteContext): readonly ShardName[] {
    const a = this.#analysis(sql);
    if (a.error === null && a.hint === null && ctx.hintShard === null && a.describeShard === ANY_SHARD) return this.#space.names as readonly ShardName[];
    return [this.describeShard(sql, ctx)];
  }

  #analysis(sql: string): Analysis {
    const cached = this.#cache.get(sql);
    if (cached !== undefined) {
      this.#stats.hits++;
      return cached;
    }
    const shape = statementShape(sql);
    const shaped = shape === null ? null : this.#fromShape(sql, shape);
    if (shaped !== null) return shaped;
    this.#stats.misses++;
    const a = this.#analyze(sql);
    this.#cache.set(sql, a);
    return a;
  }

  /**
   * The analysis of `sql` made from its shape's: its plan is the shape
   * router's plan for the text's literal values, with the text itself as
   * every shard's SQL. Null when the full analysis must run: the first text of
   * a shape (a shape seen once is only remembered: most texts with a new shape
   * are one-offs, and they pay nothing more than the scan), a shape that
   * failed a check, or a plan that is not the text sent unchanged (a rewrite
   * for a merge, a multi-row INSERT split, an INSERT … SELECT moving rows),
   * whose SQL would hold the constants of the analysed text.
   *
   * The second text of a shape (or the first of a new variant) is parsed and
   * analysed here with its literals bound to slots: a miss, cached by its
   * text. Later ones are shape hits and are not cached by text: most such
   * texts are never seen again, and keeping each would cost the LRU churn
   * and the garbage collector more than planning it again from its shape.
   */
  #fromShape(sql: string, shape: StatementShape): Analysis | null {
    const entry = this.#shapes.get(shape.key);
    if (entry === undefined) {
      this.#shapes.set(shape.key, SEEN_ONCE);
      return null;
    }
    let variant: ShapeVariant | undefined;
    let parsed = false;
    if (entry === SEEN_ONCE) {
      const made = this.#shapeVariant(sql, shape);
      this.#shapes.set(shape.key, made === null ? NOT_SHAPED : { pinned: made.pinned, variants: [made.variant] });
      variant = made?.variant;
      parsed = true;
    } else if (entry.pinned !== null) {
      const pinned = pinnedValues(entry.pinned, shape.literals);
      variant = entry.variants.find((v) => v.pinnedValues === pinned);
      if (variant === undefined) {
        variant = this.#shapeVariant(sql, shape)?.variant;
        if (variant !== undefined) {
          if (entry.variants.length >= SHAPE_VARIANTS) entry.variants.shift();
          entry.variants.push(variant);
        }
        parsed = true;
      }
    }
    if (variant === undefined) return null;
    const plan = this.#shapePlan(variant, sql, shape.literals);
    if (plan === null) return null;
    const info: StatementInfo = { ...variant.info, sql };
    const a = analysis(variant.hint, info, fixedRouter(plan), variant.describeShard, null);
    if (parsed) {
      this.#stats.misses++;
      this.#cache.set(sql, a);
    } else this.#stats.shapeHits++;
    return a;
  }

  /**
   * Parses and analyses one text of a shape with its literals bound to slots.
   * Null when the shape cannot be served: a syntax error or several
   * statements, a statement that does not route alike on every call (README
   * "Cache"), a literal that is not one constant of the tree, or an analysis
   * that failed.
   */
  #shapeVariant(sql: string, shape: StatementShape): { pinned: readonly number[]; variant: ShapeVariant } | null {
    let stmt: Node;
    try {
      const parsed = parseSql(sql);
      if (parsed.length !== 1) return null;
      stmt = (parsed[0] as { stmt: Node }).stmt;
    } catch (e) {
      if (e instanceof PgError) return null;
      throw e;
    }
    // A write whose subqueries may run first deparses them from its tree: the analysed text's constants, not this text's.
    if (!routesAlikeByTree(stmt) || hasWriteSubquery(stmt) || !bindLiteralSlots(stmt, sql, shape)) return null;
    let r: { info: StatementInfo | null; router: Router; describeShard?: number };
    try {
      r = this.#analyzeStatement(stmt, sql);
    } catch {
      return null;
    }
    if (r.info === null) return null;
    const notPreparable = notPreparableUse(stmt, sql);
    const pinned = 'SelectStmt' in stmt ? pinnedLiterals(stmt.SelectStmt) : [];
    const variant: ShapeVariant = {
      pinnedValues: pinnedValues(pinned, shape.literals),
      hint: HINT.exec(sql)?.[1] ?? null,
      info: notPreparable === null ? r.info : { ...r.info, notPreparable },
      router: notPreparable === null ? r.router : markNotPreparable(r.router, notPreparable),
      describeShard: r.describeShard ?? this.#space.defaultIndex,
    };
    return { pinned, variant };
  }

  /**
   * The plan of a text of the variant's shape with these literal values, or
   * null when it is not one whose shard statements are the text unchanged.
   * The variant's router reads key literals from `literals` (slots) and puts
   * the analysed text in its shard statements, which becomes this text.
   */
  #shapePlan(variant: ShapeVariant, sql: string, literals: readonly string[]): Plan | null {
    let plan: Plan;
    try {
      plan = variant.router.route(literals);
    } catch {
      return null;
    }
    if (plan.kind === 'refuse') return plan.needsColumns === undefined ? plan : null;
    if (plan.kind !== 'shards') return null;
    const analysed = variant.info.sql;
    for (const s of plan.statements) if (s.sql !== analysed || s.paramMap !== null) return null;
    if (sql === analysed) return plan;
    return { ...plan, statements: plan.statements.map((s) => ({ ...s, sql })) };
  }

  #hintPlan(a: Analysis, info: StatementInfo, hint: string): Plan {
    a.hintPlans ??= new Map<string, Plan>();
    let plan = a.hintPlans.get(hint);
    if (plan === undefined) {
      const i = this.#space.indexOf(hint);
      plan = i === undefined ? refusePlan(this.#unknownShard(hint)) : buildShardsPlan(info, this.#space, 'hint', [i], null, null);
      a.hintPlans.set(hint, plan);
    }
    return plan;
  }

  #unknownShard(shard: string): PgError {
    return sgError('unknownShard', { shard, shards: this.#space.names.join(', ') });
  }

  #analyze(sql: string): Analysis {
    const hint = HINT.exec(sql)?.[1] ?? null;
    const d = this.#space.defaultIndex;
    let stmt: Node;
    try {
      const parsed = parseSql(sql);
      if (parsed.length === 0) return analysis(hint, null, fixedRouter({ kind: 'empty', command: null }), d, null);
      if (parsed.length > 1) {
        const error = sgError('syntaxError', { message: 'cannot insert multiple commands into a prepared statement' });
        return analysis(hint, null, fixedRouter(refusePlan(error)), d, error);
      }
      stmt = (parsed[0] as { stmt: Node }).stmt;
    } catch (e) {
      if (!(e instanceof PgError)) throw e;
      return analysis(hint, null, fixedRouter(refusePlan(e)), d, e);
    }
    let r: { info: StatementInfo | null; router: Router; describeShard?: number };
    try {
      r = this.#analyzeStatement(stmt, sql);
    } catch (e) {
      // A statement shape the analysis did not expect: refuse it rather than guess a route.
      return analysis(hint, null, fixedRouter(internalRefusal(e)), d, null);
    }
    const notPreparable = r.info === null ? null : notPreparableUse(stmt, sql);
    const marked = notPreparable === null ? r.router : markNotPreparable(r.router, notPreparable);
    const router = routesAlike(stmt, sql) ? routeOnce(marked) : marked;
    const info = r.info === null || notPreparable === null ? r.info : { ...r.info, notPreparable };
    return analysis(hint, info, router, r.describeShard ?? d, null);
  }

  #collector(): RelationCollector {
    return new RelationCollector(this.#config);
  }

  #info(command: string, facts: RelationFacts | null, sql: string, writes: boolean, ddl = false): StatementInfo {
    const tables = facts === null ? NO_TABLES : [...new Set(facts.occurrences.filter((o) => o.placement !== 'catalog').map((o) => o.table))];
    return { command, writes, ddl, tables, sql };
  }

  /** Describe target from the tables: the default shard when any lives only there. */
  /** Where a statement can be described: the default shard, or ANY_SHARD when every table it names exists on every shard. */
  #describeFor(facts: RelationFacts): number {
    const o = facts.occurrences;
    if (o.length === 0 || o.some((x) => x.placement === 'unlisted' || x.placement === 'catalog')) return this.#space.defaultIndex;
    return ANY_SHARD;
  }

  #onDefault(command: string, sql: string, writes: boolean, facts: RelationFacts | null = null): { info: StatementInfo; router: Router } {
    const info = this.#info(command, facts, sql, writes);
    return { info, router: fixedRouter(buildShardsPlan(info, this.#space, 'default', [this.#space.defaultIndex], null, null)) };
  }

  #analyzeStatement(stmt: Node, sql: string): { info: StatementInfo | null; router: Router; describeShard?: number } {
    const space = this.#space;
    if ('SelectStmt' in stmt && stmt.SelectStmt.intoClause === undefined) {
      const facts = this.#collector().select(stmt.SelectStmt).facts();
      const info = this.#info('SELECT', facts, sql, facts.writesInCte);
      const leaves = setOperationBranches(stmt.SelectStmt);
      const branches = leaves === null ? null : { facts: leaves.branches.map((b) => this.#collector().select(b).facts()), distinctOp: leaves.distinctOp };
      return { info, router: new SelectRouter(stmt.SelectStmt, facts, info, space, branches), describeShard: this.#describeFor(facts) };
    }
    if ('InsertStmt' in stmt) {
      const facts = this.#collector().insert(stmt.InsertStmt).facts();
      const info = this.#info('INSERT', facts, sql, true);
      // The SELECT of an INSERT … SELECT that moves rows between shards (or the write of a WITH that moves them) is planned as a statement of its own.
      const planSource = (node: Node): Router => this.#analyzeStatement(node, deparseNode(node)).router;
      return { info, router: insertRouter(stmt.InsertStmt, facts, info, space, planSource), describeShard: this.#describeFor(facts) };
    }
    if ('UpdateStmt' in stmt || 'DeleteStmt' in stmt) {
      const c = this.#collector();
      const facts = 'UpdateStmt' in stmt ? c.update(stmt.UpdateStmt).facts() : c.delete((stmt as { DeleteStmt: never }).DeleteStmt).facts();
      const info = this.#info('UpdateStmt' in stmt ? 'UPDATE' : 'DELETE', facts, sql, true);
      const update = 'UpdateStmt' in stmt;
      const write = update ? stmt.UpdateStmt : (stmt as { DeleteStmt: DeleteStmt }).DeleteStmt;
      const fallback: WriteFallback = (params, ctx, error) => planSubqueryWrite(write, update, params, ctx, (text, p, c) => this.plan(text, p, c), error);
      return { info, router: this.#writeRefusal(stmt, facts, fallback) ?? new WriteRouter(facts, info, space, fallback), describeShard: this.#describeFor(facts) };
    }
    if ('TransactionStmt' in stmt) return { info: null, router: fixedRouter(transactionPlan(stmt.TransactionStmt)) };
    if ('VariableSetStmt' in stmt) return { info: null, router: fixedRouter(setPlan(stmt.VariableSetStmt, sql)) };
    if ('VariableShowStmt' in stmt) {
      const name = (stmt.VariableShowStmt.name ?? '').toLowerCase();
      if (name.startsWith('shardgate.')) return { info: null, router: fixedRouter({ kind: 'show', name }) };
      return this.#onDefault('SHOW', sql, false);
    }
    if ('CopyStmt' in stmt) return this.#copy(stmt.CopyStmt, sql);
    if ('DiscardStmt' in stmt) return { info: null, router: fixedRouter({ kind: 'empty', command: commandOf(stmt) }) };
    if ('ExplainStmt' in stmt) return this.#explain(stmt.ExplainStmt, sql);
    if ('PrepareStmt' in stmt) return { info: null, router: fixedRouter(preparePlan(stmt.PrepareStmt, sql)) };
    if ('ExecuteStmt' in stmt) return { info: null, router: fixedRouter(executePlan(stmt.ExecuteStmt)) };
    if ('DeallocateStmt' in stmt) return { info: null, router: fixedRouter(deallocatePlan(stmt.DeallocateStmt)) };
    if ('FetchStmt' in stmt) return { info: null, router: fixedRouter(fetchPlan(stmt.FetchStmt)) };
    if ('ClosePortalStmt' in stmt) return { info: null, router: fixedRouter(closePlan(stmt.ClosePortalStmt)) };
    if ('DeclareCursorStmt' in stmt) return { info: null, router: this.#declareRouter(stmt.DeclareCursorStmt, sql) };
    if ('MergeStmt' in stmt) {
      const facts = this.#collector().tablesOnly(stmt).facts();
      const bad = facts.occurrences.find((o) => o.placement === 'sharded' || o.placement === 'broadcast');
      if (bad !== undefined) {
        const info = this.#info('MERGE', facts, sql, true);
        const hint = 'Use INSERT … ON CONFLICT or UPDATE filtered by the sharding key.';
        return { info, router: fixedRouter(refusePlan(sgError('unsupportedCrossShard', { reason: `MERGE over ${bad.placement} table ${bad.table} runs on the default shard only`, hint }))) };
      }
      return this.#onDefault('MERGE', sql, true, facts);
    }
    const type = nodeType(stmt);
    if (DEFAULT_SHARD_COMMANDS.has(type)) return this.#onDefault(commandOf(stmt), sql, type === 'DoStmt' || type === 'CallStmt');
    const ddl = ddlRouter('SelectStmt' in stmt ? { CreateTableAsStmt: { into: stmt.SelectStmt.intoClause, query: stmt } } : stmt, sql, this.#collector(), space);
    return { info: 'SelectStmt' in stmt ? { ...ddl.info, command: 'SELECT' } : ddl.info, router: ddl.router };
  }

  /**
   * DECLARE … CURSOR … FOR query: the query is planned as a statement of its
   * own (its text as written after FOR, so hints and the caches apply), with
   * the DECLARE's parameters.
   */
  #declareRouter(d: DeclareCursorStmt, sql: string): Router {
    const query = textAfterKeyword(sql, 'FOR');
    if (query === null || d.query === undefined) return fixedRouter(refusePlan(sgError('syntaxError', { message: 'DECLARE CURSOR without FOR query' })));
    const options = d.options ?? 0;
    const base = {
      kind: 'declare',
      name: d.portalname ?? '',
      binary: (options & CURSOR_OPT_BINARY) !== 0,
      scroll: (options & CURSOR_OPT_SCROLL) !== 0 ? 'scroll' : (options & CURSOR_OPT_NO_SCROLL) !== 0 ? 'noScroll' : 'default',
      hold: (options & CURSOR_OPT_HOLD) !== 0,
    } as const;
    return { route: (params, ctx) => ({ ...base, query: this.plan(query, params, ctx ?? { hintShard: null }) }) };
  }

  /**
   * The router of a write refused whatever its parameters: one that changes a
   * row's sharding key, or a write to a broadcast table reading other tables
   * (unless those are read only by subqueries that can run first: the write
   * then changes every copy with the same values).
   */
  #writeRefusal(stmt: Node, facts: RelationFacts, fallback: WriteFallback): Router | null {
    const target = facts.occurrences.find((o) => o.target);
    if (target === undefined) return null;
    if (target.placement === 'sharded' && 'UpdateStmt' in stmt) {
      const key = target.rule?.key;
      if ((stmt.UpdateStmt.targetList ?? []).some((t) => 'ResTarget' in t && t.ResTarget.name === key)) {
        return fixedRouter(refusePlan(sgError('unsupportedCrossShard', { reason: "changing a row's sharding key would move it to another shard", hint: 'Delete the row and insert it again with the new key.' })));
      }
    }
    if (target.placement === 'broadcast') {
      const other = facts.occurrences.find((o) => !o.target && o.placement !== 'broadcast');
      if (other !== undefined) {
        const error = sgError('unsupportedCrossShard', {
          reason: `a broadcast table must change the same way on every shard, but the statement reads ${other.placement} table ${other.table}`,
          hint: 'Use constants or broadcast tables only in writes to a broadcast table, or uncorrelated subqueries in its WHERE and SET.',
        });
        return { route: (params, ctx) => fallback(params, ctx ?? { hintShard: null }, error) ?? refusePlan(error) };
      }
    }
    return null;
  }

  #copy(c: CopyStmt, sql: string): { info: StatementInfo | null; router: Router; describeShard?: number } {
    if (c.filename !== undefined || c.is_program === true) {
      return { info: null, router: fixedRouter(refusePlan(sgError('featureNotSupported', { feature: 'COPY to or from a file or program on the server', hint: 'Use COPY … FROM STDIN or COPY … TO STDOUT (psql: \\copy).' }))) };
    }
    if (c.is_from === true) {
      const rel = c.relation ?? {};
      const p = this.#collector().placementOf(rel);
      const space = this.#space;
      const shards = p.placement === 'sharded' || p.placement === 'broadcast' ? space.names : [space.names[space.defaultIndex] as ShardName];
      return { info: null, router: fixedRouter(copyFromPlan(c, sql, p.table, p.placement, shards)) };
    }
    // COPY t TO STDOUT reads like SELECT * FROM t.
    const query: SelectStmt =
      c.query !== undefined && 'SelectStmt' in c.query
        ? c.query.SelectStmt
        : { targetList: [{ ResTarget: { val: { ColumnRef: { fields: [{ A_Star: {} }] } } } }], fromClause: [{ RangeVar: c.relation ?? {} }], op: 'SETOP_NONE' };
    const facts = this.#collector().select(query).facts();
    const info = this.#info('COPY', facts, sql, false);
    const inner = new SelectRouter(query, facts, info, this.#space);
    const router: Router = {
      route: (params) => {
        const plan = inner.route(params);
        if (plan.kind !== 'shards') return plan;
        if (plan.merge !== null || plan.statements.some((s) => s.sql !== sql)) {
          return refusePlan(sgError('unsupportedCrossShard', { reason: 'COPY (query) TO STDOUT cannot merge rows of several shards (ORDER BY, LIMIT, aggregates, DISTINCT)', hint: 'Filter by the sharding key, or COPY each shard\'s rows without ordering.' }));
        }
        const out: CopyToPlan = { kind: 'copyTo', statements: plan.statements };
        return out;
      },
    };
    return { info: null, router };
  }

  #explain(e: ExplainStmt, sql: string): { info: StatementInfo | null; router: Router; describeShard?: number } {
    const inner = e.query === undefined ? null : this.#analyzeStatement(e.query, sql);
    const analyze = (e.options ?? []).some((o) => 'DefElem' in o && o.DefElem.defname === 'analyze' && !(o.DefElem.arg !== undefined && 'String' in o.DefElem.arg && ['false', 'off', '0'].includes(o.DefElem.arg.String.sval ?? '')));
    const writes = analyze && (inner?.info?.writes ?? false);
    const info: StatementInfo = { command: 'EXPLAIN', writes, ddl: false, tables: inner?.info?.tables ?? NO_TABLES, sql };
    if (inner === null || inner.info === null) return this.#onDefault('EXPLAIN', sql, false);
    const memo = new PlanMemo(info, this.#space);
    const router: Router = {
      route: (params, ctx) => {
        const plan = inner.router.route(params, ctx);
        if (plan.kind === 'insertSelect') {
          return refusePlan(sgError('unsupportedCrossShard', { reason: 'EXPLAIN of an INSERT … SELECT that moves rows between shards', hint: 'EXPLAIN its SELECT instead.' }));
        }
        if (plan.kind === 'subqueryWrite') {
          return refusePlan(sgError('unsupportedCrossShard', { reason: 'EXPLAIN of a write whose subqueries run first on other shards', hint: 'EXPLAIN its subqueries, and the write with their results as constants, instead.' }));
        }
        if (plan.kind === 'gather') {
          // Its statement would run over copies of the tables: that is the query, not its plan.
          return refusePlan(sgError('unsupportedCrossShard', { reason: 'EXPLAIN of a statement ShardGate evaluates over copies of its tables gathered from the shards', hint: 'EXPLAIN the parts that run on the shards instead.' }));
        }
        if (plan.kind !== 'shards') return plan;
        if (writes && plan.statements.some((s) => s.sql !== sql)) {
          return refusePlan(sgError('unsupportedCrossShard', { reason: 'EXPLAIN ANALYZE of a write that is split across shards', hint: 'EXPLAIN without ANALYZE, or filter the write to one shard.' }));
        }
        if (plan.statements.length > 1) {
          const explained = explainAcrossShards(plan, e, sql, writes);
          return explained instanceof PgError ? refusePlan(explained) : explained;
        }
        const shards = plan.statements.map((s) => this.#space.indexOf(s.shard) ?? this.#space.defaultIndex);
        return memo.get(plan.route, shards);
      },
    };
    return { info, router, describeShard: inner.describeShard ?? this.#space.defaultIndex };
  }
}

/** DeclareCursorStmt.options bits (PostgreSQL's parsenodes.h). */
const CURSOR_OPT_BINARY = 0x1;
const CURSOR_OPT_SCROLL = 0x2;
const CURSOR_OPT_NO_SCROLL = 0x4;
const CURSOR_OPT_HOLD = 0x20;

/**
 * Text every statement creating or naming a temporary object, or calling
 * pg_notify, contains: the TEMP/TEMPORARY keywords (never quoted or escaped),
 * `pg_temp` and `pg_notify` in any case (funcName lower-cases), or `U&` for an
 * identifier written with Unicode escapes. Without it the tree need not be walked.
 */
const MAY_BE_NOT_PREPARABLE = /temp|pg_notify|u&/i;

/**
 * What a statement does that leaves its shard's branch unable to PREPARE
 * TRANSACTION (ShardsPlan.notPreparable), or null: creating or naming a
 * temporary object, LISTEN/UNLISTEN/NOTIFY, a cursor WITH HOLD.
 */
function notPreparableUse(stmt: Node, sql: string): string | null {
  const type = nodeType(stmt);
  if (type === 'ListenStmt' || type === 'UnlistenStmt' || type === 'NotifyStmt') return 'LISTEN, UNLISTEN or NOTIFY';
  if (type === 'DeclareCursorStmt' && (((stmt as { DeclareCursorStmt: { options?: number } }).DeclareCursorStmt.options ?? 0) & CURSOR_OPT_HOLD) !== 0) {
    return 'a cursor WITH HOLD';
  }
  if (type === 'ExplainStmt' || type === 'TransactionStmt' || type === 'VariableSetStmt') return null;
  if (!MAY_BE_NOT_PREPARABLE.test(sql)) return null;
  const temp = findRangeVars(stmt).some((rv) => rv.relpersistence === 't' || (rv.schemaname ?? '').startsWith('pg_temp'));
  if (temp) return 'a temporary object';
  let notify = false;
  walkTree(stmt, (t, value) => {
    if (t === 'FuncCall' && funcName(value as FuncCall) === 'pg_notify') notify = true;
    return !notify;
  });
  return notify ? 'LISTEN, UNLISTEN or NOTIFY' : null;
}

/**
 * True when every call routes the statement the same way: its text has no
 * `$` (so no parameter reference: the value of no parameter is read) and its
 * router does not consult the RouteContext (only an INSERT without a column
 * list does, through `columnsOf`; hints are applied before routing). With
 * `pgbench -M simple` every statement is such a text.
 */
function routesAlike(stmt: Node, sql: string): boolean {
  return !sql.includes('$') && routesAlikeByTree(stmt);
}

/** An UPDATE or DELETE holding a subquery (which `planSubqueryWrite` may run first). */
function hasWriteSubquery(stmt: Node): boolean {
  if (!('UpdateStmt' in stmt) && !('DeleteStmt' in stmt)) return false;
  let found = false;
  walkTree(stmt, (type) => {
    if (type === 'SubLink') found = true;
    return !found;
  });
  return found;
}

/**
 * True for the statements whose router does not consult the RouteContext and
 * reads nothing but key values: SELECT (not SELECT INTO), INSERT with a column
 * list, UPDATE, DELETE. These are also the statements the shape cache serves.
 */
function routesAlikeByTree(stmt: Node): boolean {
  if ('SelectStmt' in stmt) return stmt.SelectStmt.intoClause === undefined;
  if ('InsertStmt' in stmt) return (stmt.InsertStmt.cols?.length ?? 0) > 0;
  return 'UpdateStmt' in stmt || 'DeleteStmt' in stmt;
}

/**
 * Indexes of the literals a SELECT's analysis reads as constants: those in
 * the parts a multi-shard merge is planned from (select list, ORDER BY,
 * GROUP BY, HAVING, DISTINCT, LIMIT, OFFSET, WINDOW; `planSelectMerge`),
 * of the statement and of every branch of a set operation. Literals
 * elsewhere reach the plan only as key values (slots) or not at all.
 */
function pinnedLiterals(sel: SelectStmt): number[] {
  const out = new Set<number>();
  const visit = (s: SelectStmt): void => {
    walkTree([s.targetList, s.sortClause, s.groupClause, s.havingClause, s.distinctClause, s.limitCount, s.limitOffset, s.windowClause], (type, value) => {
      if (type === 'A_Const') {
        const k = literalSlot(value as A_Const);
        if (k !== undefined) out.add(k);
      }
      return true;
    });
    if (s.larg !== undefined) visit(s.larg);
    if (s.rarg !== undefined) visit(s.rarg);
  };
  visit(sel);
  return [...out].sort((a, b) => a - b);
}

function pinnedValues(pinned: readonly number[], literals: readonly string[]): string {
  if (pinned.length === 0) return '';
  return pinned.map((k) => literals[k]).join('\0');
}

/**
 * A router for a statement that routes alike on every call: the first plan
 * is kept and the inner router let go, so the cached analysis no longer holds
 * the syntax tree and routing facts (cheaper for the garbage collector while
 * thousands of such texts sit in the cache). A call that throws keeps the
 * inner router for the next call.
 */
function routeOnce(inner: Router): Router {
  return new OnceRouter(inner);
}

class OnceRouter implements Router {
  #plan: Plan | null = null;
  #source: Router | null;

  constructor(source: Router) {
    this.#source = source;
  }

  route(params: Params, ctx?: RouteContext): Plan {
    if (this.#plan === null && this.#source !== null) {
      const plan = this.#source.route(params, ctx);
      // A refusal for want of a table's column order is answered once the caller read it: route again then.
      if (plan.kind === 'refuse' && plan.needsColumns !== undefined) return plan;
      this.#plan = plan;
      this.#source = null;
    }
    return this.#plan as Plan;
  }
}

function markNotPreparable(inner: Router, what: string): Router {
  return {
    route: (params, ctx) => {
      const plan = inner.route(params, ctx);
      return plan.kind === 'shards' ? { ...plan, notPreparable: what } : plan;
    },
  };
}

function internalRefusal(e: unknown): Plan {
  if (e instanceof PgError) return refusePlan(e);
  return refusePlan(sgError('internal', { reason: e instanceof Error ? e.message : String(e) }));
}

/**
 * The plain SELECT branches of a top-level set operation, and the first
 * operation that is not UNION ALL (null when all are). Null when the
 * statement is not a set operation or has a WITH clause of its own.
 */
function setOperationBranches(sel: SelectStmt): { branches: SelectStmt[]; distinctOp: string | null } | null {
  if ((sel.op ?? 'SETOP_NONE') === 'SETOP_NONE' || sel.withClause !== undefined) return null;
  const branches: SelectStmt[] = [];
  let distinctOp: string | null = null;
  const visit = (s: SelectStmt): void => {
    const op = s.op ?? 'SETOP_NONE';
    if (op === 'SETOP_NONE') {
      branches.push(s);
      return;
    }
    if (!(op === 'SETOP_UNION' && s.all === true)) distinctOp ??= `${op.replace('SETOP_', '')}${s.all === true ? ' ALL' : ''}`;
    if (s.larg !== undefined) visit(s.larg);
    if (s.rarg !== undefined) visit(s.rarg);
  };
  visit(sel);
  return { branches, distinctOp };
}

/** Statements that run where session-level objects live: the default shard (README: "Default shard"). */
const DEFAULT_SHARD_COMMANDS = new Set([
  'ListenStmt', 'UnlistenStmt', 'NotifyStmt', 'DoStmt', 'CallStmt', 'LoadStmt', 'CheckPointStmt',
]);
