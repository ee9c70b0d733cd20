import type { SelectStmt } from 'libpg-query';
import { sgError } from '../errors/catalogue.js';
import type { GatherPlan, Plan } from './plan.js';
import { planGather } from './gather.js';
import type { RelationFacts } from './relations.js';
import type { Params, ShardSpace } from './routing.js';
import { requireKnownShape, routeBranches, routeRelations, RouteError } from './routing.js';
import type { MergeRewrite } from './select-merge.js';
import { planSelectMerge } from './select-merge.js';
import type { PgError } from '../errors/pg-error.js';
import type { RouteContext, Router, StatementInfo } from './statement-info.js';
import { guard, PlanMemo } from './statement-info.js';

/**
 * Routes a SELECT: by its tables' key conditions; on several shards the
 * rewrite for merging is computed once, the first time it is needed.
 */
export class SelectRouter implements Router {
  readonly #facts: RelationFacts;
  readonly #branches: { readonly facts: readonly RelationFacts[]; readonly distinctOp: string | null } | null;
  readonly #space: ShardSpace;
  readonly #stmt: SelectStmt;
  readonly #info: StatementInfo;
  readonly #memo: PlanMemo;
  #merge: MergeRewrite | null = null;
  #gather: GatherPlan | 'none' | null = null;

  /** `branches`: the separately analyzed branches of a top-level set operation. */
  constructor(stmt: SelectStmt, facts: RelationFacts, info: StatementInfo, space: ShardSpace, branches: { facts: readonly RelationFacts[]; distinctOp: string | null } | null = null) {
    this.#stmt = stmt;
    this.#facts = facts;
    this.#branches = branches;
    this.#info = info;
    this.#space = space;
    this.#memo = new PlanMemo(info, space);
  }

  route(params: Params): Plan {
    return guard(() => {
      try {
        return this.#route(params);
      } catch (e) {
        // What the streaming merge refuses, PostgreSQL may evaluate over copies of the tables.
        if (!(e instanceof RouteError) || e.error.code !== '0A000') throw e;
        this.#gather ??= planGather(this.#stmt, this.#facts, this.#space, e.error) ?? 'none';
        if (this.#gather === 'none') throw e;
        return this.#gather;
      }
    });
  }

  #route(params: Params): Plan {
    const b = this.#branches;
    const r = b === null ? routeRelations(this.#facts, params, this.#space) : routeBranches(b.facts, b.distinctOp, params, this.#space);
    if (r.shards.length === 1) return this.#memo.get(r.route, r.shards);
    this.#merge ??= planSelectMerge(this.#stmt, this.#info.sql);
    const m = this.#merge;
    if (m.kind === 'refuse') throw new RouteError(sgError('unsupportedCrossShard', { reason: m.reason, hint: m.hint }));
    return this.#memo.get(r.route, r.shards, m.merge, m.sql === this.#info.sql ? null : () => ({ sql: m.sql, paramMap: m.paramMap }));
  }
}

/**
 * What a write refused across shards (0A000) may become instead: a plan that
 * runs its subqueries first (`planSubqueryWrite`), or null to keep the refusal.
 */
export type WriteFallback = (params: Params, ctx: RouteContext, refusal: PgError) => Plan | null;

/**
 * Routes UPDATE and DELETE (and other statements routed by their tables
 * without merging): results of several shards are concatenated.
 */
export class WriteRouter implements Router {
  readonly #facts: RelationFacts;
  readonly #space: ShardSpace;
  readonly #memo: PlanMemo;
  readonly #broadcastTarget: boolean;
  readonly #fallback: WriteFallback | null;

  constructor(facts: RelationFacts, info: StatementInfo, space: ShardSpace, fallback: WriteFallback | null = null) {
    this.#facts = facts;
    this.#space = space;
    this.#memo = new PlanMemo(info, space);
    this.#broadcastTarget = facts.occurrences.some((o) => o.target && o.placement === 'broadcast');
    this.#fallback = fallback;
  }

  route(params: Params, ctx?: RouteContext): Plan {
    return guard(() => {
      requireKnownShape(this.#facts);
      if (this.#broadcastTarget) return this.#memo.get('broadcast-write', this.#space.all);
      let r: ReturnType<typeof routeRelations>;
      try {
        r = routeRelations(this.#facts, params, this.#space);
      } catch (e) {
        // Subqueries reading other shards may run first, their results becoming parameters of the write.
        if (this.#fallback === null || !(e instanceof RouteError) || e.error.code !== '0A000') throw e;
        const plan = this.#fallback(params, ctx ?? { hintShard: null }, e.error);
        if (plan === null) throw e;
        return plan;
      }
      return this.#memo.get(r.route, r.shards);
    });
  }
}
