import { describe, expect, it } from 'vitest';
import { CopyFormatError, CopyRowSplitter, unescapeText, type CopyRowOptions } from '../../../src/engine/copy-rows.js';

const text: CopyRowOptions = { format: 'text', delimiter: '\t', nullString: '\\N', quote: '"', escape: '"', header: false, keyColumn: 1 };
const csv: CopyRowOptions = { format: 'csv', delimiter: ',', nullString: '', quote: '"', escape: '"', header: false, keyColumn: 1 };

/** Feeds the data one byte at a time, so every row and field boundary falls between chunks. */
function byteByByte(opts: CopyRowOptions, data: string): { rows: { bytes: string; key: string | null }[]; header: string | null } {
  const s = new CopyRowSplitter(opts);
  const rows = [];
  for (const b of Buffer.from(data)) rows.push(...s.push(Buffer.from([b])));
  rows.push(...s.finish());
  return { rows: rows.map((r) => ({ bytes: r.bytes.toString(), key: r.key })), header: s.header?.toString() ?? null };
}

describe('CopyRowSplitter, text format', () => {
  it('splits rows across chunk boundaries and reads the key column', () => {
    const { rows } = byteByByte(text, 'a\t1\tx\nb\t2\ty\n');
    expect(rows).toEqual([
      { bytes: 'a\t1\tx\n', key: '1' },
      { bytes: 'b\t2\ty\n', key: '2' },
    ]);
  });

  it('reads \\N as NULL and decodes escapes in the key', () => {
    const { rows } = byteByByte(text, 'a\t\\N\nb\tx\\ty\\\\z\\101\n');
    expect(rows.map((r) => r.key)).toEqual([null, 'x\ty\\zA']);
  });

  it('treats an escaped delimiter and an escaped newline as data', () => {
    const { rows } = byteByByte(text, 'a\\\tb\tk1\nc\\\nd\tk2\n');
    expect(rows.map((r) => r.key)).toEqual(['k1', 'k2']);
    expect(rows).toHaveLength(2);
  });

  it('keeps a last row without newline and stops at the end marker', () => {
    expect(byteByByte(text, 'a\t1\nb\t2').rows.map((r) => r.bytes)).toEqual(['a\t1\n', 'b\t2\n']);
    expect(byteByByte(text, 'a\t1\n\\.\nb\t2\n').rows.map((r) => r.key)).toEqual(['1']);
  });

  it('takes the first line as header when asked', () => {
    const out = byteByByte({ ...text, header: true }, 'name\tid\na\t1\n');
    expect(out.header).toBe('name\tid\n');
    expect(out.rows.map((r) => r.key)).toEqual(['1']);
  });

  it('fails on a row without the key column', () => {
    const s = new CopyRowSplitter(text);
    expect(() => s.push(Buffer.from('only-one\n'))).toThrow(CopyFormatError);
  });
});

describe('CopyRowSplitter, CSV format', () => {
  it('keeps newlines, delimiters and doubled quotes inside quoted fields', () => {
    const { rows } = byteByByte(csv, '"a\nb",1\n"x,""y""","k,2"\n');
    expect(rows).toEqual([
      { bytes: '"a\nb",1\n', key: '1' },
      { bytes: '"x,""y""","k,2"\n', key: 'k,2' },
    ]);
  });

  it('tells an unquoted empty field (NULL) from a quoted one (empty string)', () => {
    const { rows } = byteByByte(csv, 'a,\nb,""\n');
    expect(rows.map((r) => r.key)).toEqual([null, '']);
  });

  it('honours a separate escape character and CRLF line ends', () => {
    const { rows } = byteByByte({ ...csv, escape: '\\' }, 'a,"q\\"x"\r\nb,"z"\r\n');
    expect(rows.map((r) => r.key)).toEqual(['q"x', 'z']);
  });

  it('rejects an unterminated quoted field at the end of the data', () => {
    const s = new CopyRowSplitter(csv);
    s.push(Buffer.from('a,"open\n'));
    expect(() => s.finish()).toThrow(CopyFormatError);
  });
});

describe('unescapeText', () => {
  it('decodes octal, hex and named escapes', () => {
    expect(unescapeText('\\x41\\102\\n\\q')).toBe('AB\nq');
  });
});
