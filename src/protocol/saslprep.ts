/**
 * SASLprep (RFC 4013) as PostgreSQL applies it to SCRAM passwords
 * (src/common/saslprep.c): map, NFKC-normalize, and if the result contains a
 * prohibited character, fall back to the password's raw UTF-8 bytes rather
 * than failing — so a client and PostgreSQL derive the same key either way.
 *
 * Not implemented: the bidirectional-text check (RFC 3454 §6) and the
 * Unicode 3.2 unassigned-code-point table (A.1). Passwords that PostgreSQL
 * rejects only for those reasons hash differently here; ASCII passwords,
 * which need no preparation at all, are unaffected.
 */
export function saslprep(password: string): Buffer {
  // PostgreSQL's fast path: pure ASCII is used unchanged (even with control characters).
  // UTF-8 length equals UTF-16 length exactly when every character is ASCII.
  const raw = Buffer.from(password, 'utf8');
  if (raw.length === password.length) return raw;
  let mapped = '';
  for (const ch of password) {
    const cp = ch.codePointAt(0)!;
    if (inRanges(cp, NON_ASCII_SPACE)) mapped += ' ';
    else if (!inRanges(cp, MAPPED_TO_NOTHING)) mapped += ch;
  }
  const normalized = mapped.normalize('NFKC');
  for (const ch of normalized) {
    const cp = ch.codePointAt(0)!;
    if (inRanges(cp, PROHIBITED) || (cp & 0xfffe) === 0xfffe) return raw;
  }
  return Buffer.from(normalized, 'utf8');
}

type Ranges = readonly (readonly [number, number])[];

function inRanges(cp: number, ranges: Ranges): boolean {
  for (const [lo, hi] of ranges) if (cp >= lo && cp <= hi) return true;
  return false;
}

/** RFC 3454 C.1.2, mapped to U+0020 (PostgreSQL's table; U+200B included). */
const NON_ASCII_SPACE: Ranges = [
  [0x00a0, 0x00a0], [0x1680, 0x1680], [0x2000, 0x200b], [0x202f, 0x202f], [0x205f, 0x205f], [0x3000, 0x3000],
];

/** RFC 3454 B.1, removed. */
const MAPPED_TO_NOTHING: Ranges = [
  [0x00ad, 0x00ad], [0x034f, 0x034f], [0x1806, 0x1806], [0x180b, 0x180d], [0x200b, 0x200d], [0x2060, 0x2060], [0xfe00, 0xfe0f], [0xfeff, 0xfeff],
];

/** RFC 3454 C.1.2, C.2.1, C.2.2, C.3, C.4 (except the xFFFE/xFFFF pairs, tested apart), C.5, C.6, C.7, C.8, C.9. */
const PROHIBITED: Ranges = [
  ...NON_ASCII_SPACE,
  [0x0000, 0x001f], [0x007f, 0x009f],
  [0x0340, 0x0341], [0x06dd, 0x06dd], [0x070f, 0x070f], [0x180e, 0x180e],
  [0x200c, 0x200f], [0x2028, 0x202e], [0x2060, 0x2063], [0x206a, 0x206f],
  [0x2ff0, 0x2ffb], [0xd800, 0xdfff], [0xe000, 0xf8ff], [0xfdd0, 0xfdef], [0xfeff, 0xfeff], [0xfff9, 0xfffd],
  [0x1d173, 0x1d17a], [0xe0001, 0xe0001], [0xe0020, 0xe007f], [0xf0000, 0xffffd], [0x100000, 0x10fffd],
];
