import type { ShardName } from '../config/names.js';
import { PgError } from '../errors/pg-error.js';
import { restorePointAtCut } from './cut.js';
import { DeadlockDetector } from './deadlock-detector.js';
import { ensureDecisionTable, resolveDecision } from './decision.js';
import { Failpoints } from './failpoints.js';
import { NAME_PATTERN, newTransactionId, parsePreparedGid, quoteLiteral } from './gid.js';
import { GlobalTransaction, type GlobalTransactionOptions, type TxContext } from './global-transaction.js';
import { collectDecisions, listInDoubt, recoverOnce, withConnection, type RecoveryContext } from './recovery.js';
import { NO_TX_OBSERVER, type InDoubtTransaction, type Outcome, type RecoveryDecision, type TxConnection, type TxConnectionSource, type TxLog, type TxObserver } from './types.js';

export interface TransactionManagerOptions<C extends TxConnection> {
  /** 1-32 letters or digits, unique per running instance; part of every gid. */
  coordinatorId: string;
  source: TxConnectionSource<C>;
  prepareTimeoutMs: number;
  acquireTimeoutMs: number;
  /** Period of the recovery and decision-GC loop; 0 = no loop (recover() still works). */
  recoveryIntervalMs: number;
  /** Recovery leaves younger prepared branches alone (their coordinator may be mid-commit). Default 2 × prepareTimeoutMs. */
  recoveryGraceMs?: number;
  /** How long 'abort' decision rows are kept. Default one day. */
  decisionRetentionMs?: number;
  /** Period of the distributed deadlock check; 0 = off. Default 250 ms. */
  deadlockCheckMs?: number;
  failpoints?: Failpoints;
  log?: TxLog;
  /** Told about ended transactions, 2PC phase timings, prepare timeouts, recovery decisions and broken deadlocks; default: nothing. */
  observer?: TxObserver;
}

/** COMMIT PREPARED tries in the background before recovery is left to finish a branch. */
const HANDOFF_TRIES = 3;
const HANDOFF_FIRST_DELAY_MS = 200;

/**
 * Starts global transactions and keeps the promise that none is half
 * committed: recovery (at start and every recoveryIntervalMs), garbage
 * collection of decision rows, the distributed deadlock detector, and
 * background completion of COMMIT PREPARED. Protocol: src/tx/README.md.
 */
export class TransactionManager<C extends TxConnection> {
  readonly coordinatorId: string;
  readonly #opts: TransactionManagerOptions<C>;
  readonly #failpoints: Failpoints;
  readonly #log: TxLog;
  readonly #graceMs: number;
  readonly #retentionMs: number;
  readonly #active = new Map<string, GlobalTransaction<C>>();
  readonly #handOffs = new Set<Promise<void>>();
  readonly #wakers = new Set<() => void>();
  readonly #ctx: TxContext<C>;
  readonly #recoveryCtx: RecoveryContext<C>;
  readonly #detector: DeadlockDetector<C>;
  #needsSchema: Set<ShardName>;
  #timer: NodeJS.Timeout | undefined;
  #pass: Promise<unknown> | undefined;
  #stopped = true;

  constructor(opts: TransactionManagerOptions<C>) {
    if (!NAME_PATTERN.test(opts.coordinatorId)) throw new Error(`coordinatorId "${opts.coordinatorId}": expected 1-32 letters or digits`);
    for (const s of opts.source.shards) if (!NAME_PATTERN.test(s)) throw new Error(`shard name "${s}": expected 1-32 letters or digits`);
    this.coordinatorId = opts.coordinatorId;
    this.#opts = opts;
    this.#failpoints = opts.failpoints ?? Failpoints.fromEnv();
    this.#log = opts.log ?? (() => undefined);
    this.#graceMs = opts.recoveryGraceMs ?? 2 * opts.prepareTimeoutMs;
    this.#retentionMs = opts.decisionRetentionMs ?? 86_400_000;
    this.#needsSchema = new Set(opts.source.shards);
    const observer = opts.observer ?? NO_TX_OBSERVER;
    this.#ctx = {
      observer,
      source: opts.source,
      prepareTimeoutMs: opts.prepareTimeoutMs,
      acquireTimeoutMs: opts.acquireTimeoutMs,
      failpoints: this.#failpoints,
      log: this.#log,
      resolve: (anchor, gid, participants) => this.#resolveAfterLostReply(anchor, gid, participants),
      handOff: (shard, prepared) => this.#handOff(shard, prepared),
      finished: (tx) => this.#active.delete(tx.id),
    };
    this.#recoveryCtx = { source: opts.source, acquireTimeoutMs: opts.acquireTimeoutMs, failpoints: this.#failpoints, log: this.#log, observer };
    this.#detector = new DeadlockDetector({
      source: opts.source,
      intervalMs: opts.deadlockCheckMs ?? 250,
      acquireTimeoutMs: opts.acquireTimeoutMs,
      log: this.#log,
      observer,
      transactions: () => this.#active,
    });
  }

  /** How long recovery leaves a prepared branch alone; older ones are in doubt. */
  get recoveryGraceMs(): number {
    return this.#graceMs;
  }

  /** Live global transactions of this instance, by id. */
  get active(): ReadonlyMap<string, GlobalTransaction<C>> {
    return this.#active;
  }

  /**
   * Creates schema shardgate and table shardgate.tx_decision on every shard
   * (idempotent, safe concurrently with other instances), runs recovery once
   * (every leftover branch on an exclusive shard, whatever its age), then starts the recovery/GC loop and the deadlock detector. A shard that
   * cannot be reached is logged and retried by every later pass.
   */
  async start(): Promise<void> {
    await this.#ensureSchema();
    // A second start() must not leave two loops running.
    clearTimeout(this.#timer);
    this.#stopped = false;
    // An exclusive (embedded) shard is open in this process only, so a branch prepared on it before start-up
    // has no live coordinator: no grace period. Nothing may stay prepared there once the shard serves: a
    // statement waiting on the branch's locks would freeze the shard (DESIGN.md "Embedded shards").
    const exclusive = (shard: ShardName): boolean => this.#opts.source.exclusive?.(shard) ?? false;
    await recoverOnce(this.#recoveryCtx, (shard) => (exclusive(shard) ? 0 : this.#graceMs));
    this.#detector.start();
    this.#scheduleLoop();
  }

  /**
   * A new global transaction. `beginSql` is sent when a shard joins ('BEGIN'
   * by default); `setup(conn)` runs on each freshly acquired connection first.
   */
  begin(opts: GlobalTransactionOptions<C> = {}): GlobalTransaction<C> {
    const tx = new GlobalTransaction<C>(this.#ctx, newTransactionId(this.coordinatorId), opts);
    this.#active.set(tx.id, tx);
    return tx;
  }

  /**
   * Creates the restore point `name` on every shard at one cut (src/tx/cut.ts):
   * point-in-time recovery of every shard to it gives a fleet where each global
   * transaction is whole or absent. Returns each shard's restore-point LSN.
   * Needs the shards' schema (decision table) and superuser connections.
   */
  async restorePoint(name: string): Promise<ReadonlyMap<ShardName, string>> {
    await this.#ensureSchema();
    const acquired: C[] = [];
    let broken = true;
    try {
      for (const shard of [...this.#opts.source.shards].sort()) acquired.push(await this.#opts.source.acquire(shard, this.#opts.acquireTimeoutMs));
      const result = await restorePointAtCut(acquired, name, this.#opts.prepareTimeoutMs);
      this.#ctx.observer.cutTaken?.(result.holdMs / 1000, result.finished, result.delayed);
      broken = false;
      return result.value;
    } finally {
      // After an error a connection may still hold a gate: closing it releases the gate.
      for (const conn of acquired) conn.release(broken);
    }
  }

  /**
   * One recovery pass: every prepared branch of ours older than the grace
   * period (or `graceMs`: 0 at the start of an embedded shard, where nothing
   * else can be mid-commit) is committed or rolled back as its anchor decides.
   */
  async recover(opts: { graceMs?: number } = {}): Promise<RecoveryDecision[]> {
    await this.#ensureSchema();
    return recoverOnce(this.#recoveryCtx, opts.graceMs ?? this.#graceMs);
  }

  /** Prepared branches of ours with their age and whether their anchor answers (never resolves anything). */
  inDoubt(): Promise<InDoubtTransaction[]> {
    return listInDoubt(this.#recoveryCtx);
  }

  /** One decision-row garbage collection pass; returns how many rows went. */
  collectDecisions(): Promise<number> {
    // A coordinator that lost the anchor's reply reads the decision back within seconds; keep commit rows well past that.
    const commitMinAgeMs = Math.max(60_000, 2 * this.#graceMs);
    return collectDecisions(this.#recoveryCtx, this.#retentionMs, commitMinAgeMs);
  }

  /**
   * Stops the loops and waits for a running pass and for background COMMIT
   * PREPARED tries (their remaining tries run at once, without back-off).
   * Live transactions are the sessions' to end.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#detector.stop();
    await this.#pass;
    for (const wake of this.#wakers) wake();
    this.#wakers.clear();
    await Promise.allSettled([...this.#handOffs]);
  }

  #scheduleLoop(): void {
    if (this.#stopped || this.#opts.recoveryIntervalMs <= 0) return;
    this.#timer = setTimeout(() => {
      this.#pass = this.recover()
        .then(() => this.collectDecisions())
        .catch((err: unknown) => this.#log('error', 'recovery pass failed', { err: String(err) }))
        .finally(() => this.#scheduleLoop());
    }, this.#opts.recoveryIntervalMs);
    this.#timer.unref();
  }

  async #ensureSchema(): Promise<void> {
    if (this.#needsSchema.size === 0) return;
    await Promise.all(
      [...this.#needsSchema].map(async (shard) => {
        try {
          await withConnection(this.#recoveryCtx, shard, ensureDecisionTable);
          this.#needsSchema.delete(shard);
        } catch (err) {
          this.#log('error', 'cannot create shardgate.tx_decision; will retry', { shard, err: String(err) });
        }
      }),
    );
  }

  /** Fixes the outcome after the anchor's reply to the decision was lost; a few tries, as the old backend may still hold the row. */
  async #resolveAfterLostReply(anchor: ShardName, gid: string, participants: readonly ShardName[]): Promise<Outcome> {
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        return await withConnection(this.#recoveryCtx, anchor, (conn) => resolveDecision(conn, gid, participants));
      } catch (err) {
        lastError = err;
        await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
      }
    }
    throw lastError;
  }

  /** A pause that stop() cuts short. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wakers.delete(wake);
        resolve();
      }, ms);
      const wake = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.#wakers.add(wake);
    });
  }

  #handOff(shard: ShardName, prepared: string): void {
    // Log lines about the transaction carry its gid.
    const gid = parsePreparedGid(prepared)?.gid ?? prepared;
    const work = (async () => {
      for (let attempt = 0; attempt < HANDOFF_TRIES; attempt++) {
        // After stop() the remaining tries go out at once, so stopping is not held up by the back-off.
        if (!this.#stopped) await this.#sleep(HANDOFF_FIRST_DELAY_MS * 2 ** attempt);
        try {
          await withConnection(this.#recoveryCtx, shard, (conn) => conn.exec(`COMMIT PREPARED ${quoteLiteral(prepared)}`));
          this.#log('info', 'COMMIT PREPARED completed in the background', { gid, shard, prepared });
          return;
        } catch (err) {
          if (err instanceof PgError && err.code === '42704') return; // recovery finished it
          this.#log('warn', 'background COMMIT PREPARED failed', { gid, shard, prepared, attempt, err: String(err) });
        }
      }
      this.#log('warn', 'COMMIT PREPARED left to recovery', { gid, shard, prepared });
    })();
    this.#handOffs.add(work);
    void work.finally(() => this.#handOffs.delete(work));
  }
}
