import type { ShardName, TableName } from '../config/names.js';
import type { ShardGateConfig, TableRule } from '../config/types.js';
import type { PgError } from '../errors/pg-error.js';
import { sgError } from '../errors/catalogue.js';
import type { RouteKind } from './plan.js';
import type { KeyCond, ValueRef } from './key-conditions.js';
import { parseArrayLiteral } from './key-conditions.js';
import type { Occurrence, RelationFacts } from './relations.js';
import type { Bound } from './shard-key.js';
import { hashShardIndex, integerKey, modShardIndex, rangeShard, rangeShardsOverlapping } from './shard-key.js';

/** Client parameter values as text; `undefined`: sent in binary of an unknown type. */
export type Params = readonly (string | null | undefined)[];

/** The shards of a configuration, numbered in config order. */
export class ShardSpace {
  readonly names: readonly ShardName[];
  readonly #index: Map<string, number>;
  readonly defaultIndex: number;
  readonly all: readonly number[];

  constructor(config: ShardGateConfig) {
    this.names = config.shards.map((s) => s.name);
    this.#index = new Map(this.names.map((n, i) => [n, i]));
    this.defaultIndex = this.#index.get(config.defaultShard) ?? 0;
    this.all = this.names.map((_, i) => i);
  }

  get count(): number {
    return this.names.length;
  }

  indexOf(name: string): number | undefined {
    return this.#index.get(name);
  }
}

/** A thrown routing failure: becomes a RefusePlan. */
export class RouteError extends Error {
  constructor(readonly error: PgError) {
    super(error.message);
  }
}

/** The text of a key value, failing when it cannot be known. */
function valueText(v: ValueRef, params: Params, occ: Occurrence): string | null {
  if (v.kind === 'literal') return v.text;
  const p = params[v.index];
  if (p === undefined) {
    const reason = v.index >= params.length ? `parameter $${v.index + 1} has no value` : `parameter $${v.index + 1} was sent in binary format of an unknown type`;
    throw new RouteError(sgError('invalidShardingKey', { table: occ.table, column: occ.rule?.key ?? '', reason }));
  }
  return p;
}

/** Shard owning one key value under the occurrence's rule. */
export function shardOfValue(text: string, occ: Occurrence, space: ShardSpace): number {
  return shardIndexOfKey(occ.table, occ.rule, text, space);
}

/**
 * The shard a key condition `key = text` may find rows on; null when no row
 * can match: under the mod rule every stored key is an integer (INSERT, COPY
 * and INSERT … SELECT refuse any other with 22023), so a number with a
 * non-zero fraction (`5.5`) equals none, as on one server where `id = 5.5`
 * is false for every integer `id`. Otherwise the shard owning the value.
 */
function conditionShard(text: string, occ: Occurrence, space: ShardSpace): number | null {
  if (occ.rule?.kind === 'mod' && integerKey(text) === 'fraction') return null;
  return shardOfValue(text, occ, space);
}

/**
 * Index of the shard owning a row of `table` whose sharding key has this
 * text, under `rule` (null: the table is not sharded and lives on the
 * default shard). The one place the rules are applied to a key: INSERT
 * routing, COPY routing and INSERT … SELECT all come here. Throws RouteError
 * (22023) when the value cannot be routed.
 */
export function shardIndexOfKey(table: TableName, rule: ShardedRule | null, text: string, space: ShardSpace): number {
  if (rule === null) return space.defaultIndex;
  if (rule.kind === 'hash') return hashShardIndex(text, space.count);
  if (rule.kind === 'mod') {
    const i = modShardIndex(text, space.count);
    if (i === null) throw new RouteError(sgError('invalidShardingKey', { table, column: rule.key, reason: `"${text}" is not an integer (the mod rule needs one)` }));
    return i;
  }
  const shard = rangeShard(text, rule.ranges);
  if (shard === null) throw new RouteError(sgError('noShardForKey', { table, column: rule.key, value: text }));
  return space.indexOf(shard) ?? space.defaultIndex;
}

/** The rule of a sharded table. */
export type ShardedRule = Exclude<TableRule, { kind: 'broadcast' }>;

/** Sorted shard indexes a condition allows; null means every shard. */
export function evalCond(cond: KeyCond, occ: Occurrence, params: Params, space: ShardSpace): number[] | null {
  switch (cond.kind) {
    case 'any':
      return null;
    case 'in': {
      const set = new Set<number>();
      for (const v of cond.values) {
        const t = valueText(v, params, occ);
        // key = NULL matches no row: it adds no shard (nor does a fraction under the mod rule).
        const shard = t === null ? null : conditionShard(t, occ, space);
        if (shard !== null) set.add(shard);
      }
      return [...set].sort((a, b) => a - b);
    }
    case 'array': {
      const t = valueText({ kind: 'param', index: cond.index }, params, occ);
      if (t === null) return [];
      const items = parseArrayLiteral(t);
      if (items === null) return null;
      const shards = items.map((x) => conditionShard(x, occ, space)).filter((x): x is number => x !== null);
      return [...new Set(shards)].sort((a, b) => a - b);
    }
    case 'range': {
      if (occ.rule?.kind !== 'range') return null;
      const bound = (b: { value: ValueRef; inclusive: boolean } | null): Bound | null | 'null' => {
        if (b === null) return null;
        const t = valueText(b.value, params, occ);
        return t === null ? 'null' : { value: t, inclusive: b.inclusive };
      };
      const lo = bound(cond.lo);
      const hi = bound(cond.hi);
      if (lo === 'null' || hi === 'null') return [];
      return rangeShardsOverlapping(lo, hi, occ.rule.ranges)
        .map((s) => space.indexOf(s) ?? space.defaultIndex)
        .sort((a, b) => a - b);
    }
    case 'and': {
      let acc: number[] | null = null;
      for (const a of cond.args) {
        const s = evalCond(a, occ, params, space);
        if (s === null) continue;
        acc = acc === null ? s : acc.filter((x) => s.includes(x));
      }
      return acc;
    }
    case 'or': {
      const set = new Set<number>();
      for (const a of cond.args) {
        const s = evalCond(a, occ, params, space);
        if (s === null) return null;
        for (const x of s) set.add(x);
      }
      return [...set].sort((a, b) => a - b);
    }
  }
}

/**
 * Routes the branches of a set operation, each by its own tables: the
 * statement runs on the union of their shards. On several shards only UNION
 * ALL is correct, and only when every branch reads a sharded table (a
 * branch without one would repeat its rows on every shard).
 */
export function routeBranches(branches: readonly RelationFacts[], distinctOp: string | null, params: Params, space: ShardSpace): RelationRoute {
  const routes = branches.map((f) => routeRelations(f, params, space));
  // Branches of broadcast tables or no tables give the same rows anywhere: they follow the others.
  const floating = branches.map((f) => f.occurrences.every((o) => o.placement === 'broadcast'));
  const set = new Set<number>();
  routes.forEach((r, i) => {
    if (!floating[i]) for (const s of r.shards) set.add(s);
  });
  if (set.size === 0) return routes[0] ?? { shards: [space.defaultIndex], route: 'default' };
  const shards = [...set].sort((a, b) => a - b);
  if (shards.length === 1) {
    const route = routes.every((r) => r.route === routes[0]?.route) ? (routes[0]?.route ?? 'single') : 'single';
    return { shards, route };
  }
  if (distinctOp !== null) refuse(`${distinctOp} combines rows of several shards`, KEY_HINT);
  for (const f of branches) {
    const local = f.occurrences.find((o) => o.placement === 'unlisted' || o.placement === 'catalog');
    if (local !== undefined) refuse(`a UNION ALL branch reads ${local.table}, which lives only on the default shard, while the statement runs on several shards`, KEY_HINT);
    if (!f.occurrences.some((o) => o.placement === 'sharded' && o.restricting)) refuse('a UNION ALL branch without a sharded table would repeat its rows on every shard', KEY_HINT);
  }
  return { shards, route: shards.length === space.count ? 'all' : 'multi' };
}

/** Where a statement's table references send it. */
export interface RelationRoute {
  readonly shards: readonly number[];
  readonly route: RouteKind;
}

function refuse(reason: string, hint: string): never {
  throw new RouteError(sgError('unsupportedCrossShard', { reason, hint }));
}

const KEY_HINT = 'Filter every sharded table by its sharding key so the statement reads one shard, join sharded tables on their sharding keys, or force a shard with /* shardgate:shard=NAME */.';

/**
 * Throws the refusal (0A000) of a statement holding a shape the collector
 * cannot see into (`RelationFacts.unsupported`). Fail closed: such a shape may
 * read a table that routing would not know about, and running the statement
 * where the tables seen lead would answer wrong.
 */
export function requireKnownShape(facts: RelationFacts): void {
  if (facts.unsupported === null) return;
  throw new RouteError(sgError('featureNotSupported', { feature: facts.unsupported, hint: 'Rewrite the query with plain tables, joins and subqueries, or force a shard with /* shardgate:shard=NAME */.' }));
}

/**
 * Routes a statement by its tables: sharded tables by their key conditions
 * (intersected when they are co-located, required to agree on one shard
 * otherwise), unlisted and catalog tables to the default shard, broadcast
 * tables wherever the rest goes. Throws RouteError when no correct route exists.
 */
export function routeRelations(facts: RelationFacts, params: Params, space: ShardSpace): RelationRoute {
  requireKnownShape(facts);
  const sharded: Occurrence[] = [];
  let local: Occurrence | null = null;
  let broadcast = false;
  for (const o of facts.occurrences) {
    if (o.placement === 'sharded') sharded.push(o);
    else if (o.placement === 'broadcast') broadcast = true;
    else local ??= o;
  }
  if (sharded.length === 0) {
    if (local === null && broadcast) return { shards: [space.defaultIndex], route: 'broadcast-read' };
    return { shards: [space.defaultIndex], route: 'default' };
  }
  let shards: number[] | null;
  const restricting = sharded.filter((o) => o.restricting);
  if (facts.colocated && restricting.length > 0) {
    shards = null;
    for (const o of restricting) {
      const s = evalCond(o.cond, o, params, space);
      if (s !== null) shards = shards === null ? s : shards.filter((x) => s.includes(x));
    }
  } else {
    // Tables not joined on their keys: correct only when all their rows of interest sit on one shard.
    let single: number | null = null;
    for (const o of sharded) {
      const s = evalCond(o.cond, o, params, space) ?? space.all;
      if (s.length === 0) continue;
      if (s.length > 1 || (single !== null && s[0] !== single)) {
        const names = [...new Set(sharded.map((x) => x.table))].join(', ');
        const blocker = facts.colocated ? facts.multiShardBlockers[0] : undefined;
        refuse(blocker ?? `the sharded tables ${names} are not joined on their sharding keys and their conditions do not pick one shard`, KEY_HINT);
      }
      single = s[0] as number;
    }
    shards = single === null ? [] : [single];
  }
  if (shards === null) shards = [...space.all];
  if (shards.length === 0) shards = [space.defaultIndex];
  if (local !== null && (shards.length !== 1 || shards[0] !== space.defaultIndex)) {
    refuse(
      `table ${local.table} lives only on the default shard ${space.names[space.defaultIndex] ?? ''} but the sharded tables are read on ${shards.map((i) => space.names[i]).join(', ')}`,
      'Filter the sharded tables so they route to the default shard, list the table in `tables:` (for example as broadcast), or run separate queries.',
    );
  }
  if (shards.length > 1 && facts.multiShardBlockers.length > 0) refuse(facts.multiShardBlockers[0] as string, KEY_HINT);
  const route: RouteKind = shards.length === 1 ? 'single' : shards.length === space.count ? 'all' : 'multi';
  return { shards, route };
}
