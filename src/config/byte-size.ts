/** Multipliers of the size units ShardGate accepts (lower case; '' is bytes). */
const UNITS: Readonly<Record<string, number>> = { '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4 };

/** What a size may look like, for error messages. */
export const BYTE_SIZE_FORMS = 'give bytes, or a number with kB, MB, GB, TB, KiB, MiB, GiB or TiB';

/**
 * `67108864`, `64MiB`, `100 MB` (or a positive whole number) → bytes; null
 * for anything else, including sizes below one byte or beyond 2^53.
 */
export function byteSize(value: string | number): number | null {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 1 ? value : null;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
  const unit = m === null ? undefined : UNITS[m[2]!.toLowerCase()];
  const bytes = m === null || unit === undefined ? NaN : Math.floor(Number(m[1]) * unit);
  return Number.isSafeInteger(bytes) && bytes >= 1 ? bytes : null;
}
