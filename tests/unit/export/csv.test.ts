import { describe, expect, it } from 'vitest';
import { parseCsv } from '../../../src/export/csv.js';

/** The CSV that PostgreSQL's COPY … (FORMAT csv) writes, written out by hand. */
describe('parseCsv', () => {
  it('tells NULL (unquoted empty) from the empty string (quoted empty)', () => {
    expect(parseCsv('1,,""\n')).toEqual([['1', null, '']]);
  });
  it('reads quoted fields with commas, doubled quotes and newlines', () => {
    expect(parseCsv('"a,b","say ""hi""","two\nlines"\n2,x,y\n')).toEqual([
      ['a,b', 'say "hi"', 'two\nlines'],
      ['2', 'x', 'y'],
    ]);
  });
  it('reads a NULL in the last column', () => {
    expect(parseCsv('1,\n2,\n')).toEqual([['1', null], ['2', null]]);
  });
  it('reads a last line without a newline, and nothing from empty text', () => {
    expect(parseCsv('1,2')).toEqual([['1', '2']]);
    expect(parseCsv('')).toEqual([]);
  });
  it('refuses an unterminated quote and text after a closing quote', () => {
    expect(() => parseCsv('"abc\n')).toThrow(/unterminated/);
    expect(() => parseCsv('"a"b\n')).toThrow(/after a quoted/);
  });
});
