/**
 * Builds expected wire bytes by hand, independently of the encoder under test:
 * each piece is written out literally and the frame's length word is the sum
 * of the piece lengths plus four.
 */
import { expect } from 'vitest';
import { PgError } from '../../../src/errors/pg-error.js';

export const i16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
export const i32 = (n: number): Buffer => Buffer.from([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
export const cstr = (s: string): Buffer => Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);
export const byte = (n: number): Buffer => Buffer.from([n]);
export const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Byte1(code) Int32(len) body. */
export function frame(code: string, ...body: Buffer[]): Buffer {
  const b = Buffer.concat(body);
  return Buffer.concat([ascii(code), i32(b.length + 4), b]);
}

/** The SQLSTATE of the PgError `fn` throws. */
export function thrownCode(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PgError);
    return (e as PgError).code;
  }
  throw new Error('expected a PgError to be thrown');
}
