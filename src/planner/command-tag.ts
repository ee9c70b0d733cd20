import type { Node } from 'libpg-query';
import { nodeFields, nodeType } from '../sql/ast.js';

const COUNTED = /^(INSERT \d+|UPDATE|DELETE|SELECT|COPY|MERGE|FETCH|MOVE) (\d+)$/;

/**
 * Combines the command tags the shards answered for one statement into the
 * tag the client gets: row counts of `INSERT 0 n`, `UPDATE n`, `DELETE n`,
 * `SELECT n`, `COPY n`, `MERGE n` (and `FETCH n`, `MOVE n`) are summed; any
 * other tag is the first one. An empty list gives ''.
 */
export function combineTags(tags: readonly string[]): string {
  const first = tags[0];
  if (first === undefined) return '';
  const m = COUNTED.exec(first);
  if (m === null || tags.length === 1) return first;
  let total = 0;
  for (const t of tags) {
    const n = COUNTED.exec(t);
    if (n === null || n[1] !== m[1]) return first;
    total += Number(n[2]);
  }
  return `${m[1] as string} ${total}`;
}

const OBJECT_WORDS: Record<string, string> = {
  OBJECT_MATVIEW: 'MATERIALIZED VIEW',
  OBJECT_FOREIGN_TABLE: 'FOREIGN TABLE',
  OBJECT_COLUMN: 'TABLE',
  OBJECT_TABCONSTRAINT: 'TABLE',
  OBJECT_ACCESS_METHOD: 'ACCESS METHOD',
  OBJECT_EVENT_TRIGGER: 'EVENT TRIGGER',
  OBJECT_TSCONFIGURATION: 'TEXT SEARCH CONFIGURATION',
  OBJECT_TSDICTIONARY: 'TEXT SEARCH DICTIONARY',
  OBJECT_FDW: 'FOREIGN DATA WRAPPER',
  OBJECT_FOREIGN_SERVER: 'SERVER',
  OBJECT_OPCLASS: 'OPERATOR CLASS',
  OBJECT_OPFAMILY: 'OPERATOR FAMILY',
};

/** The SQL word(s) for an ObjectType enum value: OBJECT_TABLE → 'TABLE'. */
export function objectWord(objtype: string | undefined): string {
  if (objtype === undefined) return 'TABLE';
  return OBJECT_WORDS[objtype] ?? objtype.replace(/^OBJECT_/, '').replace(/_/g, ' ');
}

const FIXED: Record<string, string> = {
  SelectStmt: 'SELECT',
  InsertStmt: 'INSERT',
  UpdateStmt: 'UPDATE',
  DeleteStmt: 'DELETE',
  MergeStmt: 'MERGE',
  CreateStmt: 'CREATE TABLE',
  IndexStmt: 'CREATE INDEX',
  TruncateStmt: 'TRUNCATE TABLE',
  CommentStmt: 'COMMENT',
  CreateSchemaStmt: 'CREATE SCHEMA',
  CreateExtensionStmt: 'CREATE EXTENSION',
  AlterExtensionStmt: 'ALTER EXTENSION',
  CompositeTypeStmt: 'CREATE TYPE',
  CreateEnumStmt: 'CREATE TYPE',
  CreateRangeStmt: 'CREATE TYPE',
  AlterEnumStmt: 'ALTER TYPE',
  CreateSeqStmt: 'CREATE SEQUENCE',
  AlterSeqStmt: 'ALTER SEQUENCE',
  ViewStmt: 'CREATE VIEW',
  CreateTableAsStmt: 'SELECT',
  CreateDomainStmt: 'CREATE DOMAIN',
  AlterDomainStmt: 'ALTER DOMAIN',
  CreateTrigStmt: 'CREATE TRIGGER',
  CreatePolicyStmt: 'CREATE POLICY',
  CreateRoleStmt: 'CREATE ROLE',
  AlterRoleStmt: 'ALTER ROLE',
  DropRoleStmt: 'DROP ROLE',
  GrantRoleStmt: 'GRANT ROLE',
  RuleStmt: 'CREATE RULE',
  ReindexStmt: 'REINDEX',
  ClusterStmt: 'CLUSTER',
  RefreshMatViewStmt: 'REFRESH MATERIALIZED VIEW',
  LockStmt: 'LOCK TABLE',
  CheckPointStmt: 'CHECKPOINT',
  ExplainStmt: 'EXPLAIN',
  DoStmt: 'DO',
  CallStmt: 'CALL',
  ListenStmt: 'LISTEN',
  UnlistenStmt: 'UNLISTEN',
  NotifyStmt: 'NOTIFY',
  PrepareStmt: 'PREPARE',
  ExecuteStmt: 'EXECUTE',
  DeclareCursorStmt: 'DECLARE CURSOR',
  ClosePortalStmt: 'CLOSE CURSOR',
  VariableShowStmt: 'SHOW',
  LoadStmt: 'LOAD',
  CopyStmt: 'COPY',
  AlterDefaultPrivilegesStmt: 'ALTER DEFAULT PRIVILEGES',
  CreateCastStmt: 'CREATE CAST',
  CreateEventTrigStmt: 'CREATE EVENT TRIGGER',
  SecLabelStmt: 'SECURITY LABEL',
  CreatedbStmt: 'CREATE DATABASE',
  DropdbStmt: 'DROP DATABASE',
  CreateTableSpaceStmt: 'CREATE TABLESPACE',
  DropTableSpaceStmt: 'DROP TABLESPACE',
};

/** The command word PostgreSQL uses in the tag of a statement (the part before any row count). */
export function commandOf(stmt: Node): string {
  const type = nodeType(stmt);
  const fixed = FIXED[type];
  if (fixed !== undefined) return fixed;
  const v = nodeFields(stmt);
  switch (type) {
    case 'AlterTableStmt':
      return `ALTER ${objectWord(v.objtype as string | undefined)}`;
    case 'DropStmt':
      return `DROP ${objectWord(v.removeType as string | undefined)}`;
    case 'RenameStmt':
      return `ALTER ${objectWord((v.renameType === 'OBJECT_COLUMN' || v.renameType === 'OBJECT_TABCONSTRAINT' ? v.relationType : v.renameType) as string | undefined)}`;
    case 'AlterObjectSchemaStmt':
    case 'AlterOwnerStmt':
      return `ALTER ${objectWord(v.objectType as string | undefined)}`;
    case 'GrantStmt':
      return v.is_grant === true ? 'GRANT' : 'REVOKE';
    case 'DefineStmt':
      return `CREATE ${objectWord(v.kind as string | undefined)}`;
    case 'CreateFunctionStmt':
      return v.is_procedure === true ? 'CREATE PROCEDURE' : 'CREATE FUNCTION';
    case 'AlterFunctionStmt':
      return v.objtype === 'OBJECT_PROCEDURE' ? 'ALTER PROCEDURE' : 'ALTER FUNCTION';
    case 'VacuumStmt':
      return v.is_vacuumcmd === true ? 'VACUUM' : 'ANALYZE';
    case 'FetchStmt':
      return v.ismove === true ? 'MOVE' : 'FETCH';
    case 'DeallocateStmt':
      return v.isall === true ? 'DEALLOCATE ALL' : 'DEALLOCATE';
    case 'DiscardStmt':
      return `DISCARD ${String(v.target ?? 'DISCARD_ALL').replace(/^DISCARD_/, '')}`;
    case 'VariableSetStmt':
      return v.kind === 'VAR_RESET' || v.kind === 'VAR_RESET_ALL' ? 'RESET' : 'SET';
    default:
      return type
        .replace(/Stmt$/, '')
        .replace(/([a-z])([A-Z])/g, '$1 $2')
        .toUpperCase();
  }
}
