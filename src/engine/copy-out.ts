import type { ShardStatement } from '../planner/plan.js';
import type { ExecEvent } from './session-api.js';
import type { ShardCursor } from './shard-cursor.js';

// Binary COPY layout: an 11-byte signature, a 32-bit flags word, a 32-bit header
// extension length and that many bytes; then the tuples; then a 16-bit -1 trailer.
const BINARY_SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const BINARY_FIXED_HEADER = BINARY_SIGNATURE.length + 8;
const BINARY_TRAILER = Buffer.from([0xff, 0xff]);

function isBinary(chunk: Buffer | undefined): boolean {
  return chunk !== undefined && chunk.length >= BINARY_SIGNATURE.length && chunk.subarray(0, BINARY_SIGNATURE.length).equals(BINARY_SIGNATURE);
}

function binaryHeaderLength(chunk: Buffer): number {
  return BINARY_FIXED_HEADER + chunk.readUInt32BE(BINARY_SIGNATURE.length + 4);
}

/**
 * Runs COPY … TO STDOUT on each shard in turn and yields one client copy:
 * 'copyOut', every shard's data in statement order, then `COPY n` with the
 * rows of all shards. Binary output keeps one header (the first shard's) and
 * one trailer (the last shard's), so the client reads one valid stream.
 * Text and CSV output is concatenated as is.
 */
export async function* copyOutAll(
  statements: readonly ShardStatement[],
  connection: (s: ShardStatement) => Promise<ShardCursor>,
  running: Set<ShardCursor>,
): AsyncGenerator<ExecEvent, void, undefined> {
  let started = false;
  let binary = false;
  let total = 0;
  for (let i = 0; i < statements.length; i++) {
    const last = i === statements.length - 1;
    const conn = await connection(statements[i]!);
    running.add(conn);
    const out = conn.copyOut(statements[i]!.sql);
    try {
      let first = true;
      // One chunk is held back so that a binary trailer can be dropped from all shards but the last.
      let held: Buffer | null = null;
      let r = await out.next();
      if (!started) {
        binary = !r.done && isBinary(r.value);
        yield { kind: 'copyOut', format: binary ? 1 : 0, columnFormats: [] };
        started = true;
      }
      while (r.done !== true) {
        let chunk = r.value;
        if (first && binary && i > 0 && isBinary(chunk)) chunk = chunk.subarray(binaryHeaderLength(chunk));
        first = false;
        if (held !== null) yield { kind: 'copyData', data: held };
        held = chunk;
        r = await out.next();
      }
      if (held !== null) {
        if (binary && !last && held.length >= 2 && held.subarray(held.length - 2).equals(BINARY_TRAILER)) held = held.subarray(0, held.length - 2);
        if (held.length > 0) yield { kind: 'copyData', data: held };
      }
      total += Number(/(\d+)$/.exec(r.value)?.[1] ?? 0);
    } finally {
      running.delete(conn);
      await out.return?.('').catch(() => undefined);
    }
  }
  if (!started) yield { kind: 'copyOut', format: 0, columnFormats: [] };
  yield { kind: 'complete', tag: `COPY ${total}` };
}
