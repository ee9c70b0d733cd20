import type { ShardGateConfig } from '../config/types.js';
import type { Planner } from '../planner/planner.js';
import type { TransactionManager } from '../tx/index.js';
import type { ShardConnector, ShardCursor } from './shard-cursor.js';
import type { TableColumns } from './table-columns.js';

/** Structured log sink of the engine (the same shape the transaction manager takes). */
export type EngineLog = (level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown>) => void;

/** Settings of the default shard that sessions report at startup. */
export interface ServerDefaults {
  readonly serverVersion: string;
  readonly timeZone: string;
}

/** What every session of an engine shares. */
export interface EngineContext {
  readonly config: ShardGateConfig;
  readonly planner: Planner;
  readonly transactions: TransactionManager<ShardCursor>;
  readonly connector: ShardConnector;
  readonly log: EngineLog;
  /** Column orders of tables, for INSERTs without a column list. */
  readonly tableColumns: TableColumns;
  /** Read once from the default shard, then cached. */
  serverDefaults(): Promise<ServerDefaults>;
}
