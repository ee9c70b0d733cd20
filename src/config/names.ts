/** A shard's configured name (`s0`). Branded so it cannot be mixed up with a table name. */
export type ShardName = string & { readonly __brand: 'ShardName' };
/** A logical table name as written in `tables:` (unqualified, lower case unless quoted). */
export type TableName = string & { readonly __brand: 'TableName' };

export const shardName = (s: string): ShardName => s as ShardName;
export const tableName = (s: string): TableName => s as TableName;
