/**
 * PostgreSQL type OIDs (pg_type.oid) of the built-in types the merge computes
 * on. They are fixed in PostgreSQL's catalog (pg_type.dat) and never change.
 */
export const TypeOid = {
  bool: 16,
  bytea: 17,
  char: 18,
  name: 19,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  oid: 26,
  float4: 700,
  float8: 701,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
  numeric: 1700,
  uuid: 2950,
} as const;

/** SQL name of a type OID for messages; the number when the type is not one of ours. */
export function typeName(oid: number): string {
  for (const [name, value] of Object.entries(TypeOid)) if (value === oid) return name;
  return String(oid);
}
