const TWO_32 = 1n << 32n;
const TWO_31 = 1n << 31n;

/**
 * A snapshot as `pg_current_snapshot()::text` prints it (`xmin:xmax:xip,…`,
 * 64-bit xids), and the question a change stream asks of it: is this
 * transaction's work already in what the snapshot saw? PostgreSQL's rule
 * (`pg_visible_in_snapshot`): committed and visible when xid < xmin, or
 * xid < xmax and not in the in-progress list. An export's copy holds exactly
 * the transactions visible in its snapshot, so a stream started before the
 * snapshot skips those and emits the rest: no gap, no overlap.
 */
export class SnapshotFilter {
  readonly #xmin: bigint;
  readonly #xmax: bigint;
  readonly #xip: ReadonlySet<bigint>;

  private constructor(xmin: bigint, xmax: bigint, xip: ReadonlySet<bigint>) {
    this.#xmin = xmin;
    this.#xmax = xmax;
    this.#xip = xip;
  }

  /** The snapshot `text` describes; null when it is not `xmin:xmax:xip,…` with xmin ≤ every xip < xmax. */
  static parse(text: string): SnapshotFilter | null {
    const m = /^(\d+):(\d+):((?:\d+(?:,\d+)*)?)$/.exec(text.trim());
    if (m === null) return null;
    const xmin = BigInt(m[1]!);
    const xmax = BigInt(m[2]!);
    const xip = new Set(m[3] === '' ? [] : m[3]!.split(',').map(BigInt));
    if (xmin > xmax || [...xip].some((x) => x < xmin || x >= xmax)) return null;
    return new SnapshotFilter(xmin, xmax, xip);
  }

  /**
   * `xid` as the WAL carries it (32 bits), widened to the 64-bit xid within
   * 2^31 of xmax — the only ones that can still be in a stream that starts
   * near the snapshot (older ones are frozen, newer ones not assigned yet).
   */
  #widen(xid: number): bigint {
    const low = BigInt(xid >>> 0);
    let full = (this.#xmax & ~(TWO_32 - 1n)) | low;
    if (full - this.#xmax >= TWO_31) full -= TWO_32;
    else if (this.#xmax - full > TWO_31) full += TWO_32;
    return full;
  }

  /** True when the transaction `xid` had committed as the snapshot saw it. */
  visible(xid: number): boolean {
    const x = this.#widen(xid);
    if (x < this.#xmin) return true;
    return x < this.#xmax && !this.#xip.has(x);
  }
}
