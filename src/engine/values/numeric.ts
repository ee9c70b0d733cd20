import type { FormatCode } from '../../protocol/fields.js';
import { sgError } from '../../errors/catalogue.js';

/**
 * An exact PostgreSQL `numeric` value. Finite values are `unscaled / 10^scale`
 * where `scale` is PostgreSQL's display scale (dscale): the number of digits
 * printed after the decimal point. No JavaScript floats are involved anywhere.
 */
export type Numeric =
  | { readonly kind: 'finite'; readonly unscaled: bigint; readonly scale: number }
  | { readonly kind: 'nan' }
  | { readonly kind: 'infinity'; readonly negative: boolean };

export const NUMERIC_NAN: Numeric = { kind: 'nan' };

// numeric.c: NUMERIC_MIN_SIG_DIGITS, NUMERIC_MAX_DISPLAY_SCALE, DEC_DIGITS (NBASE = 10^4).
const MIN_SIG_DIGITS = 16;
const MAX_DISPLAY_SCALE = 1000;
const DEC_DIGITS = 4;
const NBASE = 10000n;

// Binary sign words (numeric.c NUMERIC_POS, NUMERIC_NEG, NUMERIC_NAN, NUMERIC_PINF, NUMERIC_NINF).
const SIGN_POS = 0x0000;
const SIGN_NEG = 0x4000;
const SIGN_NAN = 0xc000;
const SIGN_PINF = 0xd000;
const SIGN_NINF = 0xf000;

const pow10Cache: bigint[] = [];
/** 10^n as a bigint, cached for the small exponents scales use. */
export function pow10(n: number): bigint {
  if (n < 64) return (pow10Cache[n] ??= 10n ** BigInt(n));
  return 10n ** BigInt(n);
}

export function numericFromBigInt(value: bigint): Numeric {
  return { kind: 'finite', unscaled: value, scale: 0 };
}

const NUMERIC_TEXT = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:[eE]([+-]?\d+))?$/;

/**
 * Parses numeric text: numeric_out's output (`-12.340`, `NaN`, `Infinity`,
 * `-Infinity`) and also literal forms numeric_in accepts (`+1e3`, `.5`,
 * surrounding spaces, `inf`). Returns null when the text is not a number.
 */
export function parseNumeric(text: string): Numeric | null {
  const t = text.trim();
  const lower = t.toLowerCase();
  if (lower === 'nan') return NUMERIC_NAN;
  if (lower === 'infinity' || lower === '+infinity' || lower === 'inf' || lower === '+inf') return { kind: 'infinity', negative: false };
  if (lower === '-infinity' || lower === '-inf') return { kind: 'infinity', negative: true };
  const m = NUMERIC_TEXT.exec(t);
  if (m === null) return null;
  const [, sign, body = '', exponent] = m;
  const dot = body.indexOf('.');
  const digits = dot < 0 ? body : body.slice(0, dot) + body.slice(dot + 1);
  let scale = dot < 0 ? 0 : body.length - dot - 1;
  let unscaled = BigInt(digits === '' ? '0' : digits);
  if (exponent !== undefined) {
    const e = Number(exponent);
    if (!Number.isSafeInteger(e) || Math.abs(e) > 4 * MAX_DISPLAY_SCALE) return null;
    scale -= e;
    if (scale < 0) {
      unscaled *= pow10(-scale);
      scale = 0;
    }
  }
  return { kind: 'finite', unscaled: sign === '-' ? -unscaled : unscaled, scale };
}

/** numeric_out: exactly `scale` digits after the point, no exponent. */
export function formatNumeric(n: Numeric): string {
  if (n.kind === 'nan') return 'NaN';
  if (n.kind === 'infinity') return n.negative ? '-Infinity' : 'Infinity';
  const negative = n.unscaled < 0n;
  const digits = (negative ? -n.unscaled : n.unscaled).toString().padStart(n.scale + 1, '0');
  const intPart = digits.slice(0, digits.length - n.scale);
  const text = n.scale === 0 ? intPart : `${intPart}.${digits.slice(digits.length - n.scale)}`;
  return negative ? `-${text}` : text;
}

/**
 * Decodes numeric_send's binary layout: int16 ndigits, int16 weight (of the
 * first digit, in base 10000), uint16 sign, int16 dscale, then ndigits int16
 * base-10000 digits, most significant first.
 */
export function decodeNumericBinary(buf: Buffer): Numeric {
  const ndigits = buf.readInt16BE(0);
  const weight = buf.readInt16BE(2);
  const sign = buf.readUInt16BE(4);
  const dscale = buf.readInt16BE(6);
  if (sign === SIGN_NAN) return NUMERIC_NAN;
  if (sign === SIGN_PINF) return { kind: 'infinity', negative: false };
  if (sign === SIGN_NINF) return { kind: 'infinity', negative: true };
  let n = 0n;
  for (let i = 0; i < ndigits; i++) n = n * NBASE + BigInt(buf.readInt16BE(8 + 2 * i));
  // n is the value times 10000^(ndigits - 1 - weight); bring it to dscale decimal digits.
  const shift = DEC_DIGITS * (weight - ndigits + 1) + dscale;
  const unscaled = shift >= 0 ? n * pow10(shift) : n / pow10(-shift);
  return { kind: 'finite', unscaled: sign === SIGN_NEG ? -unscaled : unscaled, scale: dscale };
}

/** Base-10000 digits of |value| with the decimal point on a digit boundary, as numeric_send lays them out. */
function nbaseDigits(n: { unscaled: bigint; scale: number }): { digits: number[]; weight: number } {
  const abs = n.unscaled < 0n ? -n.unscaled : n.unscaled;
  if (abs === 0n) return { digits: [], weight: 0 };
  const fracGroups = Math.ceil(n.scale / DEC_DIGITS);
  let rest = abs * pow10(fracGroups * DEC_DIGITS - n.scale);
  const digits: number[] = [];
  while (rest > 0n) {
    digits.push(Number(rest % NBASE));
    rest /= NBASE;
  }
  digits.reverse();
  let weight = digits.length - 1 - fracGroups;
  while (digits.length > 0 && digits[digits.length - 1] === 0) digits.pop();
  while (digits.length > 0 && digits[0] === 0) {
    digits.shift();
    weight--;
  }
  return { digits, weight };
}

/** numeric_send: the binary layout decoded by `decodeNumericBinary`. */
export function encodeNumericBinary(n: Numeric): Buffer {
  if (n.kind !== 'finite') {
    const out = Buffer.alloc(8);
    out.writeUInt16BE(n.kind === 'nan' ? SIGN_NAN : n.negative ? SIGN_NINF : SIGN_PINF, 4);
    return out;
  }
  const { digits, weight } = nbaseDigits(n);
  const out = Buffer.alloc(8 + 2 * digits.length);
  out.writeInt16BE(digits.length, 0);
  out.writeInt16BE(weight, 2);
  out.writeUInt16BE(n.unscaled < 0n ? SIGN_NEG : SIGN_POS, 4);
  out.writeInt16BE(n.scale, 6);
  digits.forEach((d, i) => out.writeInt16BE(d, 8 + 2 * i));
  return out;
}

/** Decodes a numeric column value in either format. */
export function decodeNumeric(buf: Buffer, format: FormatCode): Numeric {
  if (format === 1) return decodeNumericBinary(buf);
  const text = buf.toString('latin1');
  const n = parseNumeric(text);
  if (n === null) throw sgError('invalidTextRepresentation', { type: 'numeric', value: text });
  return n;
}

export function encodeNumeric(n: Numeric, format: FormatCode): Buffer {
  return format === 1 ? encodeNumericBinary(n) : Buffer.from(formatNumeric(n), 'latin1');
}

function rescale(unscaled: bigint, from: number, to: number): bigint {
  return to === from ? unscaled : unscaled * pow10(to - from);
}

/** Total order of PostgreSQL's numeric_cmp: -Infinity < finite < Infinity < NaN, NaN equal to NaN. */
export function compareNumeric(a: Numeric, b: Numeric): number {
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb || a.kind !== 'finite' || b.kind !== 'finite') return ra - rb;
  const scale = Math.max(a.scale, b.scale);
  const x = rescale(a.unscaled, a.scale, scale);
  const y = rescale(b.unscaled, b.scale, scale);
  return x < y ? -1 : x > y ? 1 : 0;
}

function rank(n: Numeric): number {
  if (n.kind === 'nan') return 2;
  if (n.kind === 'infinity') return n.negative ? -2 : 1;
  return 0;
}

/** A string equal for numerically equal values (1.0 and 1.00, 0 and -0.0): trailing zeros dropped. */
export function numericKey(n: Numeric): string {
  if (n.kind !== 'finite') return formatNumeric(n);
  let { unscaled, scale } = n;
  while (scale > 0 && unscaled % 10n === 0n) {
    unscaled /= 10n;
    scale--;
  }
  return unscaled === 0n ? '0' : `${unscaled}e-${scale}`;
}

/** add_var: exact; the result's display scale is the larger of the two (as numeric_add). */
export function addNumeric(a: Numeric, b: Numeric): Numeric {
  if (a.kind === 'nan' || b.kind === 'nan') return NUMERIC_NAN;
  if (a.kind === 'infinity') return b.kind === 'infinity' && b.negative !== a.negative ? NUMERIC_NAN : a;
  if (b.kind === 'infinity') return b;
  const scale = Math.max(a.scale, b.scale);
  return { kind: 'finite', unscaled: rescale(a.unscaled, a.scale, scale) + rescale(b.unscaled, b.scale, scale), scale };
}

/** Weight (in base-10000 digits) and value of the first non-zero base-10000 digit; 0 and 0 for zero. */
function leadingDigit(n: { unscaled: bigint; scale: number }): { weight: number; first: number } {
  const { digits, weight } = nbaseDigits(n);
  return digits.length === 0 ? { weight: 0, first: 0 } : { weight, first: digits[0]! };
}

/**
 * The result scale numeric division picks (numeric.c select_div_scale): at
 * least 16 significant digits, never less than either input's display scale,
 * within 0..1000.
 */
export function divisionScale(a: { unscaled: bigint; scale: number }, b: { unscaled: bigint; scale: number }): number {
  const x = leadingDigit(a);
  const y = leadingDigit(b);
  // As PostgreSQL: when the first digits are equal, assume the dividend is the smaller.
  let qweight = x.weight - y.weight;
  if (x.first <= y.first) qweight--;
  const rscale = Math.max(MIN_SIG_DIGITS - qweight * DEC_DIGITS, a.scale, b.scale, 0);
  return Math.min(rscale, MAX_DISPLAY_SCALE);
}

/**
 * numeric_div: the quotient at `divisionScale`, rounded half away from zero,
 * so a merged avg() prints exactly what one server prints. Division by zero
 * raises 22012 as PostgreSQL does.
 */
export function divideNumeric(a: Numeric, b: Numeric): Numeric {
  if (a.kind === 'nan' || b.kind === 'nan') return NUMERIC_NAN;
  if (a.kind === 'infinity') {
    if (b.kind === 'infinity') return NUMERIC_NAN;
    if (b.unscaled === 0n) throw sgError('divisionByZero');
    return { kind: 'infinity', negative: a.negative !== b.unscaled < 0n };
  }
  if (b.kind === 'infinity') return { kind: 'finite', unscaled: 0n, scale: 0 };
  if (b.unscaled === 0n) throw sgError('divisionByZero');
  const rscale = divisionScale(a, b);
  const negative = a.unscaled < 0n !== b.unscaled < 0n;
  // a/b * 10^rscale = (ua * 10^(sb + rscale)) / (ub * 10^sa)
  const num = (a.unscaled < 0n ? -a.unscaled : a.unscaled) * pow10(b.scale + rscale);
  const den = (b.unscaled < 0n ? -b.unscaled : b.unscaled) * pow10(a.scale);
  let q = num / den;
  if (2n * (num - q * den) >= den) q += 1n;
  return { kind: 'finite', unscaled: negative ? -q : q, scale: rscale };
}
