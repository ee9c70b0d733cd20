import type { RawRow } from '../../protocol/fields.js';
import type { InputSet } from './input-set.js';
import type { RowOrder, SortValues } from './row-order.js';

/** The current head row of one input: its batch, position in it and decoded sort keys. */
interface Head {
  readonly input: number;
  batch: readonly RawRow[];
  position: number;
  keys: SortValues;
}

const NO_ROWS: readonly RawRow[] = [];

/**
 * Merges inputs that are each sorted by `order` into one sorted stream, with a
 * binary heap over the inputs' head rows. Ties go to the lower input index, so
 * the output is deterministic.
 *
 * Memory: one batch per input (the one holding its head row) plus the output
 * batch. The output batch is handed on before waiting for any input, so rows
 * pulled from the inputs but not yet handed on never exceed the inputs' current
 * batches, and a slow shard does not hold back rows already merged.
 */
export async function* mergeSorted(inputs: InputSet, order: RowOrder, batchSize: number): AsyncGenerator<RawRow[], void, undefined> {
  const heap: Head[] = [];
  const less = (a: Head, b: Head): boolean => {
    const c = order.compare(a.keys, b.keys);
    return c < 0 || (c === 0 && a.input < b.input);
  };
  const siftDown = (start: number): void => {
    let i = start;
    const n = heap.length;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) return;
      const right = left + 1;
      const child = right < n && less(heap[right]!, heap[left]!) ? right : left;
      if (!less(heap[child]!, heap[i]!)) return;
      [heap[i], heap[child]] = [heap[child]!, heap[i]!];
      i = child;
    }
  };

  for (let input = 0; input < inputs.size; input++) {
    const batch = await inputs.next(input);
    if (batch !== null) heap.push({ input, batch, position: 0, keys: order.decode(batch[0]!) });
  }
  for (let i = (heap.length >> 1) - 1; i >= 0; i--) siftDown(i);

  let out: RawRow[] = [];
  while (heap.length > 0) {
    const head = heap[0]!;
    out.push(head.batch[head.position]!);
    head.position++;
    if (head.position < head.batch.length) {
      head.keys = order.decode(head.batch[head.position]!);
      siftDown(0);
    } else {
      if (out.length > 0) {
        yield out;
        out = [];
      }
      head.batch = NO_ROWS; // let the consumed batch go before waiting for the next
      const next = await inputs.next(head.input);
      if (next === null) {
        const last = heap.pop()!;
        if (heap.length > 0) {
          heap[0] = last;
          siftDown(0);
        }
      } else {
        head.batch = next;
        head.position = 0;
        head.keys = order.decode(next[0]!);
        siftDown(0);
      }
    }
    if (out.length >= batchSize) {
      yield out;
      out = [];
    }
  }
  if (out.length > 0) yield out;
}

/** The inputs one after another, batches passed on as they come (for results with no order to keep). */
export async function* concatenate(inputs: InputSet): AsyncGenerator<readonly RawRow[], void, undefined> {
  for (let input = 0; input < inputs.size; input++) {
    for (let batch = await inputs.next(input); batch !== null; batch = await inputs.next(input)) yield batch;
  }
}
