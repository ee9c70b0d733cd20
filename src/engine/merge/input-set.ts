import type { RawRow } from '../../protocol/fields.js';

/**
 * The shards' result streams as pull-only iterators. Rows are taken one batch
 * at a time and only when asked for, so a slow consumer slows the shards
 * instead of filling memory. `close()` ends every stream that has not ended
 * by itself (calling its iterator's `return()`), which is how shard
 * statements get cancelled or drained when a merge stops early.
 */
export class InputSet {
  readonly #iterators: AsyncIterator<readonly RawRow[]>[];
  readonly #finished: boolean[];
  #closed = false;

  constructor(inputs: readonly AsyncIterable<readonly RawRow[]>[]) {
    this.#iterators = inputs.map((input) => input[Symbol.asyncIterator]());
    this.#finished = inputs.map(() => false);
  }

  get size(): number {
    return this.#iterators.length;
  }

  /** The next non-empty batch of input `index`, or null once it has ended (or the set was closed). */
  async next(index: number): Promise<readonly RawRow[] | null> {
    const iterator = this.#iterators[index]!;
    while (!this.#closed && !this.#finished[index]) {
      let step: IteratorResult<readonly RawRow[]>;
      try {
        step = await iterator.next();
      } catch (err) {
        // A stream that threw has ended; it must not be asked to return() again.
        this.#finished[index] = true;
        throw err;
      }
      if (step.done === true) {
        this.#finished[index] = true;
        return null;
      }
      if (step.value.length > 0) return step.value;
    }
    return null;
  }

  /**
   * Calls `return()` on every input that has not ended, once, in parallel.
   * Failures while closing are not reported: the rows were no longer wanted,
   * and the backend layer deals with a connection that could not be drained.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const open = this.#iterators.filter((_, i) => !this.#finished[i]);
    this.#finished.fill(true);
    await Promise.allSettled(open.map(async (iterator) => iterator.return?.()));
  }
}
