/** Format code of a parameter or result column: 0 text, 1 binary. */
export type FormatCode = 0 | 1;

/** One column of a RowDescription (B), as PostgreSQL sends it. */
export interface FieldDescription {
  readonly name: string;
  readonly tableOid: number;
  readonly columnAttr: number;
  readonly typeOid: number;
  readonly typeSize: number;
  readonly typeModifier: number;
  readonly format: FormatCode;
}

/**
 * One row as it travels through ShardGate: each value is the exact bytes a
 * shard sent in DataRow (B), in the column's format, or null for SQL NULL.
 * Rows are forwarded without re-encoding unless a merge must compute on them.
 */
export type RawRow = readonly (Buffer | null)[];

/** Transaction status byte of ReadyForQuery (B): idle, in a transaction block, in a failed block. */
export type TxStatus = 'I' | 'T' | 'E';
