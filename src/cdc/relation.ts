import type { Pgoutput, RelationColumn, ReplicaIdentity } from './pgoutput-message.js';
import type { WalReader } from './wal-reader.js';

/*
 * Schema messages of pgoutput; each reader starts after the type byte.
 *   'R' Relation: [Int32 xid, streamed only], Int32 relation OID, String namespace
 *                 ("" for pg_catalog), String name, Int8 replica identity
 *                 (relreplident), Int16 n columns, then per column:
 *                 Int8 flags (1 = part of the key), String name, Int32 type OID,
 *                 Int32 type modifier.
 *   'Y' Type:     [Int32 xid, streamed only], Int32 type OID, String namespace, String name.
 */

/** Flag bit of a Relation column: part of the replica identity. */
const COLUMN_IS_KEY = 1;

const REPLICA_IDENTITIES: ReadonlySet<string> = new Set(['d', 'n', 'f', 'i']);

/** Reads a Relation body. */
export function readRelation(r: WalReader, inStream: boolean): Pgoutput<'Relation'> {
  const xid = inStream ? r.xid() : null;
  const relationOid = r.uint32();
  const namespace = r.cstring();
  const name = r.cstring();
  const identity = String.fromCharCode(r.byte());
  if (!REPLICA_IDENTITIES.has(identity)) throw r.fail(`unknown replica identity "${identity}"`);
  const n = r.uint16();
  const columns: RelationColumn[] = [];
  for (let i = 0; i < n; i++) {
    const flags = r.byte();
    columns.push({ isKey: (flags & COLUMN_IS_KEY) !== 0, name: r.cstring(), typeOid: r.uint32(), typeModifier: r.int32() });
  }
  return { kind: 'Relation', xid, relationOid, namespace, name, replicaIdentity: identity as ReplicaIdentity, columns };
}

/** Reads a Type body. */
export function readType(r: WalReader, inStream: boolean): Pgoutput<'Type'> {
  const xid = inStream ? r.xid() : null;
  return { kind: 'Type', xid, typeOid: r.uint32(), namespace: r.cstring(), name: r.cstring() };
}
