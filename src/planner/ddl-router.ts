import type { DropStmt, Node, RangeVar } from 'libpg-query';
import type { TableName } from '../config/names.js';
import { sgError } from '../errors/catalogue.js';
import { cloneTree, findRangeVars, nodeFields, nodeType, stringOf } from '../sql/ast.js';
import { deparseNode } from '../sql/parser.js';
import { commandOf } from './command-tag.js';
import type { Plan } from './plan.js';
import type { Placement, RelationCollector } from './relations.js';
import type { ShardSpace } from './routing.js';
import type { Router, StatementInfo } from './statement-info.js';
import { buildShardsPlan, refusePlan } from './statement-info.js';

/** Statements that create, change or drop objects not tied to one table: they run on every shard so the objects exist wherever tables are. */
const GLOBAL_OBJECTS = new Set([
  'CreateSchemaStmt', 'CreateExtensionStmt', 'AlterExtensionStmt', 'AlterExtensionContentsStmt', 'CompositeTypeStmt', 'CreateEnumStmt',
  'CreateRangeStmt', 'AlterEnumStmt', 'DefineStmt', 'CreateFunctionStmt', 'AlterFunctionStmt', 'CreateSeqStmt', 'AlterSeqStmt',
  'CreateDomainStmt', 'AlterDomainStmt', 'CreateRoleStmt', 'AlterRoleStmt', 'DropRoleStmt', 'GrantRoleStmt', 'CreateCastStmt',
  'CreateConversionStmt', 'CreateOpClassStmt', 'CreateOpFamilyStmt', 'AlterDefaultPrivilegesStmt', 'CreateEventTrigStmt',
  'AlterTypeStmt', 'CreateTransformStmt', 'CreateStatsStmt',
]);

/** Maintenance and locking: routed by their tables, but they neither change schema nor (logically) data. */
const MAINTENANCE = new Set(['VacuumStmt', 'LockStmt', 'ReindexStmt', 'ClusterStmt']);

const TABLE_OBJECTS = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_FOREIGN_TABLE', 'OBJECT_COLUMN']);

const MIX_HINT = 'Run one statement per table, or add IF EXISTS (DROP … IF EXISTS) so shards without the table skip it.';

/** A utility statement's tables and their placements, looking inside name lists that are not RangeVars (DROP, COMMENT). */
function referencedTables(stmt: Node, collector: RelationCollector): { table: TableName; placement: Placement }[] {
  const out: { table: TableName; placement: Placement }[] = [];
  const add = (rv: RangeVar): void => {
    const p = collector.placementOf(rv);
    if (p.placement !== 'catalog') out.push({ table: p.table, placement: p.placement });
  };
  const type = nodeType(stmt);
  const v = nodeFields(stmt);
  if (type === 'CreateSeqStmt' || type === 'AlterSeqStmt') return out;
  if ((type === 'DropStmt' && TABLE_OBJECTS.has(String(v.removeType))) || (type === 'CommentStmt' && TABLE_OBJECTS.has(String(v.objtype)))) {
    const objects = type === 'DropStmt' ? ((v.objects as Node[] | undefined) ?? []) : v.object === undefined ? [] : [v.object as Node];
    for (const o of objects) {
      const names = 'List' in o ? (o.List.items ?? []).map((i) => stringOf(i) ?? '') : [];
      // COMMENT ON COLUMN t.c names the table second to last.
      const parts = type === 'CommentStmt' && v.objtype === 'OBJECT_COLUMN' ? names.slice(0, -1) : names;
      const relname = parts[parts.length - 1] ?? '';
      add(parts.length > 1 ? { relname, schemaname: parts[parts.length - 2] as string } : { relname });
    }
    return out;
  }
  for (const rv of findRangeVars(stmt)) add(rv);
  return out;
}

/**
 * Routes DDL and other utility statements by the placement of the tables
 * they name: sharded or broadcast → every shard; unlisted → the default
 * shard; a mix → every shard only for DROP … IF EXISTS, otherwise refused.
 * Objects not tied to a table go to every shard.
 */
export function ddlRouter(stmt: Node, sql: string, collector: RelationCollector, space: ShardSpace): { info: StatementInfo; router: Router } {
  const type = nodeType(stmt);
  const v = nodeFields(stmt);
  const maintenance = MAINTENANCE.has(type);
  const tables = referencedTables(stmt, collector);
  const info: StatementInfo = {
    command: commandOf(stmt),
    writes: !maintenance,
    ddl: !maintenance,
    tables: [...new Set(tables.map((t) => t.table))],
    sql,
    ...(outsideTransactionOnly(type, v) ? { transactional: false } : {}),
  };
  const fixed = (plan: Plan): { info: StatementInfo; router: Router } => ({ info, router: { route: () => plan } });
  const all = (): Plan => buildShardsPlan(info, space, 'all', space.all, null, null);
  const placements = new Set(tables.map((t) => t.placement));
  const shared = placements.has('sharded') || placements.has('broadcast');
  const local = placements.has('unlisted');

  if ((type === 'CreateTableAsStmt' || type === 'ViewStmt') && placements.has('sharded')) {
    const created = type === 'ViewStmt' ? (v.view as RangeVar | undefined) : (v.into as { rel?: RangeVar } | undefined)?.rel;
    const target = created === undefined ? null : collector.placementOf(created);
    if (type === 'CreateTableAsStmt' || target?.placement !== 'sharded') {
      return fixed(refusePlan(sgError('unsupportedCrossShard', {
        reason: type === 'ViewStmt' ? 'a view over sharded tables must itself be listed in `tables:` with the same sharding key' : 'CREATE TABLE … AS / SELECT INTO over sharded tables',
        hint: 'Create the table first and fill it with INSERT … SELECT from a table sharded the same way.',
      })));
    }
  }
  const unenforceable = uniqueWithoutKey(stmt, collector);
  if (unenforceable !== null) {
    return fixed(refusePlan(sgError('unsupportedCrossShard', {
      reason: unenforceable,
      hint: 'Each shard checks uniqueness only among its own rows. Include the sharding key column in the constraint or index, or make the table broadcast.',
    })));
  }
  if (shared && local) {
    const ifExists = type === 'DropStmt' && v.missing_ok === true;
    if (!ifExists) {
      const names = tables.map((t) => `${t.table} (${t.placement})`).join(', ');
      return fixed(refusePlan(sgError('unsupportedCrossShard', { reason: `the statement names tables placed differently: ${names}`, hint: MIX_HINT })));
    }
    return fixed(all());
  }
  if (shared) return fixed(all());
  if (local) {
    return fixed(buildShardsPlan(info, space, 'default', [space.defaultIndex], null, null));
  }
  if (type === 'DropStmt') {
    // Objects such as indexes and sequences may exist on the default shard only (those of unlisted tables): other shards drop them IF EXISTS.
    const d = v as DropStmt;
    if (d.missing_ok === true) return fixed(all());
    const copy = cloneTree(d);
    copy.missing_ok = true;
    const lenient = deparseNode({ DropStmt: copy });
    return fixed(buildShardsPlan(info, space, 'all', space.all, null, (i) => ({ sql: i === space.defaultIndex ? sql : lenient, paramMap: null })));
  }
  if (GLOBAL_OBJECTS.has(type) || type === 'GrantStmt' || type === 'CommentStmt' || type === 'RenameStmt' || type === 'AlterOwnerStmt' || type === 'AlterObjectSchemaStmt' || maintenance) {
    return fixed(all());
  }
  return fixed(buildShardsPlan({ ...info, ddl: false, writes: true }, space, 'default', [space.defaultIndex], null, null));
}

/**
 * Why a PRIMARY KEY, UNIQUE or EXCLUDE constraint (or unique index) the
 * statement creates on a sharded table could not hold across shards, or null.
 * Rows equal in the sharding key live on one shard, so a constraint is
 * enforced for the whole table exactly when its columns include the key
 * column itself (for EXCLUDE: compared with `=`); otherwise two shards could
 * each accept one of two rows the constraint forbids together.
 */
function uniqueWithoutKey(stmt: Node, collector: RelationCollector): string | null {
  const type = nodeType(stmt);
  const v = nodeFields(stmt);
  const rv = v.relation as RangeVar | undefined;
  if (rv === undefined || !['CreateStmt', 'IndexStmt', 'AlterTableStmt'].includes(type)) return null;
  const { table, rule } = collector.placementOf(rv);
  if (rule === null || rule.kind === 'broadcast') return null;
  const key = rule.key;
  const refuse = (what: string, lacks = `does not include its sharding key column ${key}`): string => `${what} on the sharded table ${table} ${lacks}`;
  const checkConstraint = (c: Record<string, unknown>, column: string | null): string | null => {
    const kind = c.contype === 'CONSTR_PRIMARY' ? 'a PRIMARY KEY' : c.contype === 'CONSTR_UNIQUE' ? 'a UNIQUE constraint' : c.contype === 'CONSTR_EXCLUSION' ? 'an EXCLUDE constraint' : null;
    if (kind === null) return null;
    // A constraint on an existing index (ADD … USING INDEX) was checked when that index was created.
    if (c.indexname !== undefined) return null;
    if (c.contype === 'CONSTR_EXCLUSION') {
      const pairs = ((c.exclusions as Node[] | undefined) ?? []).map((p) => ('List' in p ? (p.List.items ?? []) : []));
      const keyed = pairs.some(([elem, ops]) => {
        const name = elem !== undefined && 'IndexElem' in elem ? elem.IndexElem.name : undefined;
        const op = ops !== undefined && 'List' in ops ? (ops.List.items ?? []).map((o) => stringOf(o)) : [];
        return name === key && op.length === 1 && op[0] === '=';
      });
      return keyed ? null : refuse(kind, `does not compare its sharding key column ${key} with =`);
    }
    const columns = column !== null ? [column] : ((c.keys as Node[] | undefined) ?? []).map((k) => stringOf(k));
    return columns.includes(key) ? null : refuse(kind);
  };
  const fromColumn = (def: Record<string, unknown>): string | null => {
    for (const c of (def.constraints as Node[] | undefined) ?? []) {
      const why = 'Constraint' in c ? checkConstraint(c.Constraint as Record<string, unknown>, String(def.colname)) : null;
      if (why !== null) return why;
    }
    return null;
  };
  const fromElement = (el: Node): string | null =>
    'Constraint' in el ? checkConstraint(el.Constraint as Record<string, unknown>, null) : 'ColumnDef' in el ? fromColumn(el.ColumnDef as Record<string, unknown>) : null;
  if (type === 'CreateStmt') {
    for (const el of (v.tableElts as Node[] | undefined) ?? []) {
      const why = fromElement(el);
      if (why !== null) return why;
    }
    return null;
  }
  if (type === 'IndexStmt') {
    if (v.unique !== true) return null;
    const plain = ((v.indexParams as Node[] | undefined) ?? []).map((p) => ('IndexElem' in p && p.IndexElem.expr === undefined ? p.IndexElem.name : undefined));
    return plain.includes(key) ? null : refuse('a UNIQUE index');
  }
  for (const cmd of (v.cmds as Node[] | undefined) ?? []) {
    const c = 'AlterTableCmd' in cmd ? cmd.AlterTableCmd : undefined;
    if (c?.def === undefined || (c.subtype !== 'AT_AddConstraint' && c.subtype !== 'AT_AddColumn')) continue;
    const why = fromElement(c.def);
    if (why !== null) return why;
  }
  return null;
}

/** Statements PostgreSQL refuses inside a transaction block (PreventInTransactionBlock), so never wrapped in one. */
const NEVER_IN_TRANSACTION = new Set([
  'CreatedbStmt', 'DropdbStmt', 'AlterSystemStmt', 'CreateTableSpaceStmt', 'DropTableSpaceStmt', 'CreateSubscriptionStmt', 'DropSubscriptionStmt',
]);

/** True when the statement must run outside any transaction block (ShardsPlan.transactional). */
function outsideTransactionOnly(type: string, v: Record<string, unknown>): boolean {
  if (NEVER_IN_TRANSACTION.has(type)) return true;
  switch (type) {
    case 'VacuumStmt':
      // ANALYZE alone may run in a transaction; VACUUM may not.
      return v.is_vacuumcmd === true;
    case 'IndexStmt':
    case 'DropStmt':
      return v.concurrent === true;
    case 'ReindexStmt': {
      const concurrently = ((v.params as Node[] | undefined) ?? []).some((p) => 'DefElem' in p && p.DefElem.defname === 'concurrently' && !isFalse(p.DefElem.arg));
      return concurrently || v.kind === 'REINDEX_OBJECT_DATABASE' || v.kind === 'REINDEX_OBJECT_SYSTEM' || v.kind === 'REINDEX_OBJECT_SCHEMA';
    }
    case 'ClusterStmt':
      // CLUSTER without a table processes every clustered table of the database, which PostgreSQL does outside a transaction.
      return v.relation === undefined;
    default:
      return false;
  }
}

function isFalse(arg: Node | undefined): boolean {
  if (arg === undefined) return false;
  const text = stringOf(arg) ?? ('Integer' in arg ? String(arg.Integer.ival ?? 0) : null);
  return text !== null && ['false', 'off', '0'].includes(text.toLowerCase());
}
