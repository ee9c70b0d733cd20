import pg from 'pg';
import { hashShardIndex } from '../planner/shard-key.js';
import { commitDecisionSql } from '../tx/decision.js';
import { preparedGid, quoteLiteral } from '../tx/gid.js';
import type { ShardName } from '../config/names.js';

/** Where the hand-written client runs pgbench's TPC-B-like transaction. */
export interface TwoPhaseClientOptions {
  /** Connection strings of the shards, in config order (s0, s1, …), holding rows placed by the bench's hash rules. */
  readonly shardUrls: readonly string[];
  readonly clients: number;
  readonly durationS: number;
  /** pgbench's scale factor of the data on the shards. */
  readonly scale: number;
}

/** What one run of the hand-written client measured. */
export interface TwoPhaseClientRun {
  readonly transactions: number;
  readonly tps: number;
  /** Per committed transaction, commit included. */
  readonly latenciesMs: readonly number[];
  /** Average time of the commit (plain COMMIT or the whole two-phase commit). */
  readonly commitAvgMs: number;
  /** Share of committed transactions that wrote several shards and used two-phase commit, in %. */
  readonly twoPhasePercent: number;
  /** CPU time (user + system) of this process per committed transaction, in µs. */
  readonly cpuUsPerTransaction: number;
}

/** The gid prefix of the hand-written client: never `sg_`, so no ShardGate instance's recovery or decision count mixes with it. */
const GID_PREFIX = 'hw';

const randomInt = (lo: number, hi: number): number => lo + Math.floor(Math.random() * (hi - lo + 1));

/**
 * One client: a connection to every shard, and pgbench's TPC-B-like script
 * sent statement by statement to the shard owning its key, exactly as a
 * careful application without a proxy would do it:
 * - a shard joins the transaction with `BEGIN` in the same write as its
 *   first statement (one round trip, as ShardGate joins a shard);
 * - one written shard: plain `COMMIT`;
 * - several: ShardGate's commit protocol with the same statements
 *   (src/tx/README.md "Commit"): `PREPARE TRANSACTION` on every written
 *   shard but the anchor (the first written, the natural choice of an application; ShardGate anchors on the writer first written last) in parallel, then on the anchor
 *   the commit gate, the decision row and `COMMIT` in one round trip, then
 *   `COMMIT PREPARED` on the others in parallel before the next transaction.
 * Every statement's values are integers this code generated, so the SQL
 * text carries no outside input.
 */
class TpcbClient {
  readonly #conns: pg.Client[];
  readonly #scale: number;
  readonly #id: string;
  #serial = 0;

  constructor(conns: pg.Client[], scale: number, id: string) {
    this.#conns = conns;
    this.#scale = scale;
    this.#id = id;
  }

  /** Runs one transaction; resolves with the commit's duration and whether it used two-phase commit. */
  async run(): Promise<{ commitMs: number; twoPhase: boolean }> {
    const n = this.#conns.length;
    const aid = randomInt(1, 100_000 * this.#scale);
    const bid = randomInt(1, this.#scale);
    const tid = randomInt(1, 10 * this.#scale);
    const delta = randomInt(-5000, 5000);
    const steps: readonly [number, string][] = [
      [aid, `UPDATE pgbench_accounts SET abalance = abalance + ${delta} WHERE aid = ${aid}`],
      [aid, `SELECT abalance FROM pgbench_accounts WHERE aid = ${aid}`],
      [tid, `UPDATE pgbench_tellers SET tbalance = tbalance + ${delta} WHERE tid = ${tid}`],
      [bid, `UPDATE pgbench_branches SET bbalance = bbalance + ${delta} WHERE bid = ${bid}`],
      [aid, `INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (${tid}, ${bid}, ${aid}, ${delta}, CURRENT_TIMESTAMP)`],
    ];
    const written: number[] = [];
    try {
      for (const [key, sql] of steps) {
        const shard = hashShardIndex(String(key), n);
        const joined = written.includes(shard);
        if (!joined) written.push(shard);
        await this.#conns[shard]!.query(joined ? sql : `BEGIN; ${sql}`);
      }
    } catch (err) {
      await Promise.all(written.map((s) => this.#conns[s]!.query('ROLLBACK').catch(() => undefined)));
      throw err;
    }
    const t0 = performance.now();
    if (written.length === 1) {
      await this.#conns[written[0]!]!.query('COMMIT');
      return { commitMs: performance.now() - t0, twoPhase: false };
    }
    const [anchor, ...others] = written as [number, ...number[]];
    const gid = `${GID_PREFIX}_${this.#id}_s${anchor}_${++this.#serial}`;
    const names = others.map((s) => `s${s}`);
    const prepares = await Promise.allSettled(others.map((s) => this.#conns[s]!.query(`PREPARE TRANSACTION ${quoteLiteral(preparedGid(gid, `s${s}` as ShardName))}`)));
    const failed = prepares.find((p) => p.status === 'rejected');
    if (failed !== undefined) {
      // No decision row exists: rolling back everything is safe.
      await this.#conns[anchor]!.query('ROLLBACK').catch(() => undefined);
      await Promise.all(
        others.map((s, i) =>
          prepares[i]!.status === 'fulfilled' ? this.#conns[s]!.query(`ROLLBACK PREPARED ${quoteLiteral(preparedGid(gid, `s${s}` as ShardName))}`).catch(() => undefined) : Promise.resolve(),
        ),
      );
      throw (failed as PromiseRejectedResult).reason;
    }
    // The commit point: the decision row commits with the anchor's writes.
    await this.#conns[anchor]!.query(commitDecisionSql(gid, names));
    await Promise.all(others.map((s) => this.#conns[s]!.query(`COMMIT PREPARED ${quoteLiteral(preparedGid(gid, `s${s}` as ShardName))}`)));
    return { commitMs: performance.now() - t0, twoPhase: true };
  }
}

/**
 * pgbench's TPC-B-like transaction over the shards for `durationS` seconds
 * from `clients` concurrent clients of the hand-written two-phase client: the
 * side of the TPC-B comparison that does what ShardGate does, without the
 * proxy. Decision rows it wrote are removed afterwards. A failed transaction
 * (it should not happen: every client locks rows in the same table order)
 * fails the run.
 */
export async function runTwoPhaseClient(opts: TwoPhaseClientOptions): Promise<TwoPhaseClientRun> {
  const conns: pg.Client[][] = [];
  try {
    for (let c = 0; c < opts.clients; c++) {
      const row: pg.Client[] = [];
      conns.push(row);
      for (const url of opts.shardUrls) {
        const conn = new pg.Client({ connectionString: url });
        row.push(conn);
        await conn.connect();
      }
    }
    const latencies: number[] = [];
    let commitTotal = 0;
    let twoPhase = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const deadline = t0 + opts.durationS * 1000;
    await Promise.all(
      conns.map(async (row, c) => {
        const client = new TpcbClient(row, opts.scale, `${process.pid}c${c}`);
        while (performance.now() < deadline) {
          const start = performance.now();
          const r = await client.run();
          latencies.push(performance.now() - start);
          commitTotal += r.commitMs;
          if (r.twoPhase) twoPhase++;
        }
      }),
    );
    const elapsedS = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const n = latencies.length;
    await Promise.all(opts.shardUrls.map((_, s) => conns[0]![s]!.query(`DELETE FROM shardgate.tx_decision WHERE gid LIKE '${GID_PREFIX}\\_%'`)));
    return {
      transactions: n,
      tps: n / elapsedS,
      latenciesMs: latencies,
      commitAvgMs: n === 0 ? 0 : commitTotal / n,
      twoPhasePercent: n === 0 ? 0 : (100 * twoPhase) / n,
      cpuUsPerTransaction: n === 0 ? 0 : (cpu.user + cpu.system) / n,
    };
  } finally {
    await Promise.all(conns.flat().map((c) => c.end().catch(() => undefined)));
  }
}
