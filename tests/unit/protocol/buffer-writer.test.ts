import { describe, expect, it } from 'vitest';
import { BufferWriter } from '../../../src/protocol/index.js';
import { cstr, frame, i16, i32 } from './bytes.js';

describe('BufferWriter', () => {
  it('grows correctly from every small initial size, whatever the string widths', () => {
    const strings = ['', 'a', 'ß', '€uro', '😀😀', 'x'.repeat(40), 'é'.repeat(25), '漢字'.repeat(9)];
    const expected = Buffer.concat(strings.flatMap((s, i) => [cstr(s), i16(i), i32(-i)]));
    for (let initial = 1; initial <= 80; initial++) {
      const w = new BufferWriter(initial);
      strings.forEach((s, i) => w.cstring(s).int16(i).int32(-i));
      expect(w.finish()).toEqual(expected);
      expect(w.length).toBe(expected.length);
    }
  });

  it('frames messages in place, patching each length word', () => {
    const w = new BufferWriter(8);
    const a = w.beginMessage(0x51);
    w.cstring('SELECT 1');
    w.endMessage(a);
    w.emptyMessage(0x53);
    const b = w.beginUntyped();
    w.int32(80877103);
    w.endMessage(b);
    expect(w.finish()).toEqual(Buffer.concat([frame('Q', cstr('SELECT 1')), frame('S'), i32(8), i32(80877103)]));
  });

  it('writes unsigned 32-bit values (OIDs) with the same bits as signed ones', () => {
    expect(new BufferWriter().int32(0xffffffff).int32(-1).finish()).toEqual(Buffer.from([255, 255, 255, 255, 255, 255, 255, 255]));
  });
});
