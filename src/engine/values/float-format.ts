import type { FormatCode } from '../../protocol/fields.js';
import { sgError } from '../../errors/catalogue.js';

/**
 * Text output of float8out / float4out with PostgreSQL's default
 * extra_float_digits (1): the shortest digits that read back to the same
 * value, in fixed notation when the decimal exponent is in [-4, 15) for
 * float8 and [-4, 6) for float4 (src/common/d2s.c and f2s.c), otherwise
 * `d.ddde±XX` with at least two exponent digits. A session that lowered
 * extra_float_digits would see fewer digits from one server than from a merge.
 */
export function formatFloat8(value: number): string {
  return formatShortest(value, value.toExponential(), 15);
}

/** float4out: the shortest digits that read back to the same single-precision value. */
export function formatFloat4(value: number): string {
  const f = Math.fround(value);
  if (!Number.isFinite(f) || f === 0) return formatShortest(f, '', 6);
  for (let precision = 1; precision < 9; precision++) {
    const candidate = Number(f.toPrecision(precision));
    if (Math.fround(candidate) === f) return formatShortest(f, candidate.toExponential(), 6);
  }
  return formatShortest(f, Number(f.toPrecision(9)).toExponential(), 6);
}

function formatShortest(value: number, exponential: string, fixedBelow: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return 'Infinity';
  if (value === -Infinity) return '-Infinity';
  if (value === 0) return Object.is(value, -0) ? '-0' : '0';
  const [mantissa = '', exponentText = '0'] = exponential.split('e');
  const exponent = Number(exponentText);
  const negative = mantissa.startsWith('-');
  const digits = mantissa.replace('-', '').replace('.', '');
  let body: string;
  if (exponent >= -4 && exponent < fixedBelow) {
    if (exponent >= 0) {
      const intPart = digits.slice(0, exponent + 1).padEnd(exponent + 1, '0');
      const frac = digits.slice(exponent + 1);
      body = frac === '' ? intPart : `${intPart}.${frac}`;
    } else {
      body = `0.${'0'.repeat(-exponent - 1)}${digits}`;
    }
  } else {
    const frac = digits.slice(1);
    const exp = String(Math.abs(exponent)).padStart(2, '0');
    body = `${digits[0]}${frac === '' ? '' : `.${frac}`}e${exponent < 0 ? '-' : '+'}${exp}`;
  }
  return negative ? `-${body}` : body;
}

const FLOAT_TEXT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** Parses float text as float8in does (`NaN`, `Infinity`, `-inf`, decimals with exponent); null when invalid. */
export function parseFloatText(text: string): number | null {
  const t = text.trim();
  const lower = t.toLowerCase();
  if (lower === 'nan') return NaN;
  if (lower === 'infinity' || lower === '+infinity' || lower === 'inf' || lower === '+inf') return Infinity;
  if (lower === '-infinity' || lower === '-inf') return -Infinity;
  return FLOAT_TEXT.test(t) ? Number(t) : null;
}

/** Decodes a float4 or float8 column value (binary: IEEE 754 big-endian, 4 or 8 bytes). */
export function decodeFloat(buf: Buffer, format: FormatCode): number {
  if (format === 1) return buf.length === 4 ? buf.readFloatBE(0) : buf.readDoubleBE(0);
  const text = buf.toString('latin1');
  const n = parseFloatText(text);
  if (n === null) throw sgError('invalidTextRepresentation', { type: 'double precision', value: text });
  return n;
}

export function encodeFloat8(value: number, format: FormatCode): Buffer {
  if (format === 0) return Buffer.from(formatFloat8(value), 'latin1');
  const out = Buffer.alloc(8);
  out.writeDoubleBE(value, 0);
  return out;
}

export function encodeFloat4(value: number, format: FormatCode): Buffer {
  if (format === 0) return Buffer.from(formatFloat4(value), 'latin1');
  const out = Buffer.alloc(4);
  out.writeFloatBE(value, 0);
  return out;
}

/** PostgreSQL's total order for floats: NaN equals NaN and sorts above everything, -0 equals 0. */
export function compareFloat(a: number, b: number): number {
  if (a < b) return -1;
  if (a > b) return 1;
  if (a === b) return 0;
  const aNaN = Number.isNaN(a);
  return aNaN === Number.isNaN(b) ? 0 : aNaN ? 1 : -1;
}
