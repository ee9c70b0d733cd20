import { AsyncLocalStorage } from 'node:async_hooks';
import { sgError } from '../errors/catalogue.js';

/** One transaction bound to one owner in an async context; `ended` flips once, when the scope's callback settles. */
interface Binding {
  readonly tx: unknown;
  ended: boolean;
}

/**
 * One storage for every owner: each async context holds an immutable map
 * owner → binding, copied on write, so entering a transaction of one ShardGate
 * instance never hides or changes the transaction of another. A single
 * AsyncLocalStorage (not one per owner) keeps the per-async-resource cost
 * constant however many instances a process creates.
 */
const storage = new AsyncLocalStorage<ReadonlyMap<object, Binding>>();

/**
 * Runs `fn` with `tx` as the current transaction of `owner` (for example one
 * ShardGate instance) in `fn`'s async context: everything `fn` awaits,
 * schedules (timers, promises, Promise.all branches) and calls sees it through
 * `currentTransaction(owner)`; code outside never does. Nested calls for the
 * same owner shadow the outer transaction until they return (a savepoint),
 * then the outer one is current again. When `fn` settles (returns, resolves or
 * throws) the binding is marked ended: work that `fn` started but did not
 * await and that runs later gets an error from `currentTransaction`, never a
 * silent autocommit.
 */
export function runInTransaction<R>(owner: object, tx: unknown, fn: () => R): R {
  const binding: Binding = { tx, ended: false };
  const next = new Map(storage.getStore());
  next.set(owner, binding);
  let result: R;
  try {
    result = storage.run(next, fn);
  } catch (err) {
    binding.ended = true;
    throw err;
  }
  if (isPromiseLike(result)) {
    const end = (): void => {
      binding.ended = true;
    };
    result.then(end, end);
  } else {
    binding.ended = true;
  }
  return result;
}

/**
 * The transaction of `owner` current in this async context, or undefined when
 * there is none (the query runs on its own, in autocommit). Throws PgError
 * 25000 when the context belongs to a transaction whose scope has ended, so a
 * query escaping its transaction fails loudly.
 */
export function currentTransaction<Tx>(owner: object): Tx | undefined {
  const binding = storage.getStore()?.get(owner);
  if (binding === undefined) return undefined;
  if (binding.ended) throw sgError('transactionEnded');
  return binding.tx as Tx;
}

/** Like `currentTransaction` but never throws: the bound transaction and whether its scope has ended. */
export function peekTransaction<Tx>(owner: object): { readonly tx: Tx; readonly ended: boolean } | undefined {
  const binding = storage.getStore()?.get(owner);
  return binding === undefined ? undefined : { tx: binding.tx as Tx, ended: binding.ended };
}

/**
 * Runs `fn` outside any transaction of `owner` (other owners' transactions
 * stay current): for work that must not join the caller's transaction, such
 * as recovery or a background flush started from inside one.
 */
export function runOutsideTransaction<R>(owner: object, fn: () => R): R {
  const store = storage.getStore();
  if (store === undefined || !store.has(owner)) return fn();
  const next = new Map(store);
  next.delete(owner);
  return storage.run(next, fn);
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}
