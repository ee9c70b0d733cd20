import type { ShardName } from '../config/names.js';

/**
 * How a sharding-key value picks a shard. These functions define where rows
 * live: changing any of them moves existing rows, so they are pinned by tests
 * and documented in README.md ("Hash algorithm").
 */

const INTEGER = /^\s*([+-]?)0*(\d+)\s*$/;
const DECIMAL = /^\s*([+-]?)0*(\d*)\.(\d*?)0*\s*$/;
const UUID = /^\{?([0-9a-f]{8})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{12})\}?$/i;

/**
 * The canonical text of a key value, so that equal values of the column give
 * equal texts whichever way the client wrote them:
 * - integers: no sign for positive values, no leading zeros, '-0' is '0';
 * - decimals: as integers, and no trailing zeros after the point ('1.50' → '1.5', '2.0' → '2');
 * - UUIDs (any case, with or without hyphens or braces): lower case with hyphens;
 * - anything else: the text exactly as given.
 */
export function canonicalKey(text: string): string {
  const int = INTEGER.exec(text);
  if (int !== null) {
    const digits = int[2] === '' ? '0' : (int[2] as string);
    return int[1] === '-' && digits !== '0' ? `-${digits}` : digits;
  }
  const dec = DECIMAL.exec(text);
  if (dec !== null && (dec[2] !== '' || dec[3] !== '' || text.includes('0'))) {
    const whole = dec[2] === '' ? '0' : (dec[2] as string);
    const frac = dec[3] as string;
    const body = frac === '' ? whole : `${whole}.${frac}`;
    return dec[1] === '-' && body !== '0' ? `-${body}` : body;
  }
  const uuid = UUID.exec(text);
  if (uuid !== null) return uuid.slice(1, 6).join('-').toLowerCase();
  return text;
}

/**
 * 32-bit hash of a key's canonical text: FNV-1a over its UTF-8 bytes
 * (offset basis 0x811c9dc5, prime 0x01000193), followed by the MurmurHash3
 * 32-bit finalizer so that every output bit depends on every input bit.
 * Returns an unsigned integer.
 */
export function keyHash(text: string): number {
  const canon = canonicalKey(text);
  let h = 0x811c9dc5;
  let ascii = true;
  for (let i = 0; i < canon.length; i++) {
    if (canon.charCodeAt(i) > 0x7f) {
      ascii = false;
      break;
    }
  }
  if (ascii) {
    for (let i = 0; i < canon.length; i++) h = Math.imul(h ^ canon.charCodeAt(i), 0x01000193);
  } else {
    for (const byte of Buffer.from(canon, 'utf8')) h = Math.imul(h ^ byte, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Index (in config order) of the shard that owns `text` under the hash rule. */
export function hashShardIndex(text: string, shardCount: number): number {
  return keyHash(text) % shardCount;
}

/** A decimal number with optional fraction and exponent, as PostgreSQL's numeric input reads it. */
const NUMBER = /^\s*([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?\s*$/;
/** Past this many digits a value is beyond every integer key type (numeric keeps at most 131072 digits before the point). */
const MAX_INTEGER_DIGITS = 131072;

/**
 * The integer a number written as text stands for, as canonical integer
 * text (`5.00`, `5e0`, `+05`, `0.5e1` → `5`; `-0.0` → `0`); 'fraction'
 * when it is a number with a non-zero fraction (`5.5`, `5e-1`), which no
 * integer key equals; null when it is not a number at all.
 */
export function integerKey(text: string): string | 'fraction' | null {
  const int = INTEGER.exec(text);
  if (int !== null) return canonicalKey(text);
  const m = NUMBER.exec(text);
  if (m === null || ((m[2] ?? '') === '' && (m[3] ?? '') === '')) return null;
  const exp = m[4] === undefined ? 0 : Number(m[4]);
  const digits = `${m[2] ?? ''}${m[3] ?? ''}`.replace(/^0+/, '');
  if (digits === '') return '0';
  // The value is digits × 10^(exp − length of the fraction).
  const shift = exp - (m[3] ?? '').length;
  let whole: string;
  if (shift >= 0) {
    if (digits.length + shift > MAX_INTEGER_DIGITS) return null;
    whole = digits + '0'.repeat(shift);
  } else {
    const cut = digits.length + shift;
    if (!/^0*$/.test(digits.slice(Math.max(0, cut)))) return 'fraction';
    whole = cut <= 0 ? '0' : digits.slice(0, cut);
  }
  return m[1] === '-' && whole !== '0' ? `-${whole}` : whole;
}

/**
 * Index of the shard that owns an integer `text` under the mod rule:
 * ((v % n) + n) % n, exact for integers of any size. An integral number
 * written with a fraction or an exponent (`5.00`, `5e0`) is that integer.
 * Null when the text is not an integral number.
 */
export function modShardIndex(text: string, shardCount: number): number | null {
  const key = integerKey(text);
  if (key === null || key === 'fraction') return null;
  const negative = key.startsWith('-');
  const digits = negative ? key.slice(1) : key;
  if (digits.length <= 15) {
    const v = Number(digits) * (negative ? -1 : 1);
    return ((v % shardCount) + shardCount) % shardCount;
  }
  const v = BigInt(digits) * (negative ? -1n : 1n);
  const n = BigInt(shardCount);
  return Number(((v % n) + n) % n);
}

const NUMERIC = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;

/**
 * Orders two key values the way range rules compare them: numerically when
 * both are numbers, otherwise as text (ISO dates and timestamps sort
 * correctly as text).
 */
export function compareKeys(a: string | number, b: string | number): number {
  const an = typeof a === 'number' ? a : NUMERIC.test(a) ? Number(a) : null;
  const bn = typeof b === 'number' ? b : NUMERIC.test(b) ? Number(b) : null;
  if (an !== null && bn !== null) return an < bn ? -1 : an > bn ? 1 : 0;
  const as = String(a);
  const bs = String(b);
  return as < bs ? -1 : as > bs ? 1 : 0;
}

/** A range rule's entries, as the config lists them. */
export type RangeEntries = readonly { readonly below?: string | number; readonly shard: ShardName }[];

/** The shard of the first entry whose `below` is greater than the value (an entry without `below` matches all); null when none. */
export function rangeShard(text: string, ranges: RangeEntries): ShardName | null {
  for (const r of ranges) {
    if (r.below === undefined || compareKeys(text, r.below) < 0) return r.shard;
  }
  return null;
}

/** One end of an interval of key values. */
export interface Bound {
  readonly value: string;
  readonly inclusive: boolean;
}

/**
 * Shards whose range entries may hold a value in [lo, hi] (either end open
 * when null). Entry i holds the values below its `below` that no earlier
 * entry took, i.e. [max of earlier `below`s, below_i).
 */
export function rangeShardsOverlapping(lo: Bound | null, hi: Bound | null, ranges: RangeEntries): ShardName[] {
  const out: ShardName[] = [];
  let floor: string | number | null = null;
  for (const r of ranges) {
    const start = floor;
    const end = r.below ?? null;
    let empty = start !== null && end !== null && compareKeys(start, end) >= 0;
    // Entry covers [start, end): it misses the query when end <= lo or hi < start.
    if (!empty && end !== null && lo !== null && compareKeys(end, lo.value) <= 0) empty = true;
    if (!empty && start !== null && hi !== null) {
      const c = compareKeys(hi.value, start);
      if (c < 0 || (c === 0 && !hi.inclusive)) empty = true;
    }
    if (!empty && !out.includes(r.shard)) out.push(r.shard);
    if (end === null) break;
    if (floor === null || compareKeys(end, floor) > 0) floor = end;
  }
  return out;
}
