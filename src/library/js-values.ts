import pg from 'pg';

/**
 * JavaScript values to PostgreSQL text parameters and text results back to
 * JavaScript, the way node-pg does it, so code moving to ShardGate sees the
 * same values.
 */

/** A JavaScript value as a PostgreSQL text parameter (null stays SQL NULL). */
export function toParamText(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value)) return `\\x${value.toString('hex')}`;
  if (value instanceof Uint8Array) return `\\x${Buffer.from(value).toString('hex')}`;
  if (Array.isArray(value)) return arrayLiteral(value);
  return JSON.stringify(value);
}

/** A PostgreSQL array literal: `{1,2,NULL,"a \"b\""}`, nested arrays as nested braces. */
export function arrayLiteral(values: readonly unknown[]): string {
  const items = values.map((v) => {
    if (v === null || v === undefined) return 'NULL';
    if (Array.isArray(v)) return arrayLiteral(v);
    const text = Buffer.isBuffer(v) ? `\\x${v.toString('hex')}` : toParamText(v)!;
    return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  });
  return `{${items.join(',')}}`;
}

/** Parses a text result value by its type OID with node-pg's parsers (pg.types), e.g. int4 → number, int8 → string. */
export function fromResultText(typeOid: number, text: string): unknown {
  return pg.types.getTypeParser(typeOid, 'text')(text);
}
