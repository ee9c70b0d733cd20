import type { RawRow } from '../../protocol/fields.js';
import type { Count } from '../../planner/plan.js';
import { sgError } from '../../errors/catalogue.js';

const INTEGER = /^\s*[+-]?\d+\s*$/;

/**
 * The row count of a LIMIT or OFFSET: a value, or a client parameter given as
 * text (0-based index). NULL (`LIMIT NULL`, `LIMIT ALL` or a NULL parameter)
 * means no limit / no offset, as in PostgreSQL; a negative count raises
 * 2201W / 2201X like PostgreSQL.
 */
export function resolveCount(count: Count | null, params: readonly (string | null | undefined)[], clause: 'LIMIT' | 'OFFSET'): number | null {
  if (count === null) return null;
  let value: number;
  if (count.kind === 'value') {
    value = count.value;
  } else {
    const text = params[count.index];
    if (text === null) return null;
    if (text === undefined) {
      throw sgError('featureNotSupported', { feature: `${clause} parameter $${count.index + 1} in binary format across shards`, hint: 'Send the parameter in text format.' });
    }
    if (!INTEGER.test(text)) throw sgError('invalidTextRepresentation', { type: 'bigint', value: text });
    // Counts beyond 2^53 behave as "all rows"; no result is that large.
    value = Number(BigInt(text.trim()));
  }
  if (value < 0) throw sgError(clause === 'LIMIT' ? 'invalidRowCountInLimit' : 'invalidRowCountInOffset');
  return value;
}

/**
 * Skips `offset` rows, then passes at most `limit` rows. When the limit is
 * reached, `onLimitReached` runs before the last rows are handed on (so the
 * shard streams are closed without waiting for the consumer), and nothing more
 * is pulled from the source.
 */
export async function* offsetLimit(
  source: AsyncIterable<readonly RawRow[]>,
  offset: number,
  limit: number | null,
  onLimitReached: () => Promise<void>,
): AsyncGenerator<readonly RawRow[], void, undefined> {
  let toSkip = offset;
  let remaining = limit ?? Infinity;
  if (remaining === 0) {
    await onLimitReached();
    return;
  }
  for await (let batch of source) {
    if (toSkip > 0) {
      if (batch.length <= toSkip) {
        toSkip -= batch.length;
        continue;
      }
      batch = batch.slice(toSkip);
      toSkip = 0;
    }
    if (batch.length >= remaining) {
      const last = batch.length === remaining ? batch : batch.slice(0, remaining);
      await onLimitReached();
      yield last;
      return;
    }
    remaining -= batch.length;
    yield batch;
  }
}
