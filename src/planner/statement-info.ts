import type { ShardName, TableName } from '../config/names.js';
import type { PgError } from '../errors/pg-error.js';
import type { MergeSpec, Plan, RouteKind, ShardStatement, ShardsPlan } from './plan.js';
import type { Params, ShardSpace } from './routing.js';
import { RouteError } from './routing.js';

/** What a statement is, independent of where it runs: enough to build a ShardsPlan for any shard set or a hint. */
export interface StatementInfo {
  readonly command: string;
  readonly writes: boolean;
  readonly ddl: boolean;
  readonly tables: readonly TableName[];
  /** The client's text. */
  readonly sql: string;
  /** False for statements PostgreSQL refuses inside a transaction block (ShardsPlan.transactional). */
  readonly transactional?: boolean;
  /** What the statement does that PREPARE TRANSACTION cannot follow (ShardsPlan.notPreparable). */
  readonly notPreparable?: string;
}

/** Per-session routing input besides the statement. */
export interface RouteContext {
  /** Shard forced by `SET shardgate.shard = '…'`, or null. */
  readonly hintShard: ShardName | null;
  /**
   * The columns of a table in their catalog order, when the caller knows
   * them (the engine reads them from a shard). Needed only to route an
   * INSERT without a column list into a sharded table; without an answer
   * such an INSERT is refused with `RefusePlan.needsColumns` set.
   */
  readonly columnsOf?: (table: TableName) => readonly string[] | undefined;
}

/** Computes the plan of one analyzed statement for given parameter values. */
export interface Router {
  route(params: Params, ctx?: RouteContext): Plan;
}

/** Per-shard SQL for a route: the same text everywhere unless the statement is split. */
export type ShardSql = (shard: number) => { sql: string; paramMap: readonly number[] | null };

/**
 * Builds ShardsPlans for one statement and keeps the few distinct ones (one
 * per shard set seen), so a repeated route costs a map lookup.
 */
export class PlanMemo {
  readonly #info: StatementInfo;
  readonly #space: ShardSpace;
  /** The first plan built, kept outside the map: most statements only ever route one way. */
  #firstKey: string | null = null;
  #first: Plan | null = null;
  #plans: Map<string, Plan> | null = null;

  constructor(info: StatementInfo, space: ShardSpace) {
    this.#info = info;
    this.#space = space;
  }

  get(route: RouteKind, shards: readonly number[], merge: MergeSpec | null = null, sqlFor: ShardSql | null = null, sqlKey = ''): Plan {
    const key = `${route}|${shards.join(',')}|${sqlKey}`;
    if (key === this.#firstKey) return this.#first as Plan;
    let plan = this.#plans?.get(key);
    if (plan === undefined) {
      plan = buildShardsPlan(this.#info, this.#space, route, shards, merge, sqlFor);
      if (this.#firstKey === null) {
        this.#firstKey = key;
        this.#first = plan;
        return plan;
      }
      this.#plans ??= new Map<string, Plan>();
      // Bounded: with n shards there are few sets in practice; forget all when a statement keeps producing new ones.
      if (this.#plans.size >= 256) this.#plans.clear();
      this.#plans.set(key, plan);
    }
    return plan;
  }
}

export function buildShardsPlan(
  info: StatementInfo,
  space: ShardSpace,
  route: RouteKind,
  shards: readonly number[],
  merge: MergeSpec | null,
  sqlFor: ShardSql | null,
): ShardsPlan {
  const statements: ShardStatement[] = shards.map((i) => {
    const s = sqlFor === null ? { sql: info.sql, paramMap: null } : sqlFor(i);
    return { shard: space.names[i] as ShardStatement['shard'], sql: s.sql, paramMap: s.paramMap };
  });
  const plan: ShardsPlan = { kind: 'shards', route, command: info.command, writes: info.writes, ddl: info.ddl, tables: info.tables, statements, merge };
  if (info.transactional === false) return { ...plan, transactional: false, ...(info.notPreparable !== undefined ? { notPreparable: info.notPreparable } : {}) };
  return info.notPreparable === undefined ? plan : { ...plan, notPreparable: info.notPreparable };
}

export function refusePlan(error: PgError): Plan {
  return { kind: 'refuse', error };
}

/** Runs a routing step, turning a RouteError into a RefusePlan. */
export function guard(fn: () => Plan): Plan {
  try {
    return fn();
  } catch (e) {
    if (e instanceof RouteError) return refusePlan(e.error);
    throw e;
  }
}
