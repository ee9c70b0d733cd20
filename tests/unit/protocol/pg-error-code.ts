import { expect } from 'vitest';
import { PgError } from '../../../src/errors/pg-error.js';

/** The SQLSTATE `fn` throws; fails the test when it throws something else or nothing. */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PgError);
    return (e as PgError).code;
  }
  throw new Error('expected a throw');
}
