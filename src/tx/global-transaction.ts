import type { ShardName } from '../config/names.js';
import { sgError } from '../errors/catalogue.js';
import { PgError } from '../errors/pg-error.js';
import { asPgError, combineErrors, commitDecisionSql, outcomeUnknown } from './decision.js';
import type { Failpoints } from './failpoints.js';
import { Branch, CANCEL_GRACE_MS, settleWithin } from './branch.js';
import { beginAtCut } from './cut.js';
import { gidFor, preparedGid, quoteIdent, quoteLiteral } from './gid.js';
import { SPAN, shardgateAttributes, withSpan } from '../observe/tracing.js';
import type { Outcome, PreludeEvent, TxConnection, TxConnectionSource, TxLog, TxObserver } from './types.js';

/** What a global transaction needs from its manager. */
export interface TxContext<C extends TxConnection> {
  readonly source: TxConnectionSource<C>;
  readonly prepareTimeoutMs: number;
  readonly acquireTimeoutMs: number;
  readonly failpoints: Failpoints;
  readonly log: TxLog;
  readonly observer: TxObserver;
  /** Fixes the outcome of `gid` on its anchor through a fresh connection (after the anchor's reply was lost). */
  resolve(anchor: ShardName, gid: string, participants: readonly ShardName[]): Promise<Outcome>;
  /** Retries COMMIT PREPARED in the background; recovery finishes it if those tries fail too. */
  handOff(shard: ShardName, prepared: string): void;
  /** Called once, after the transaction ended and released every connection. */
  finished(tx: GlobalTransaction<C>): void;
}

/** How a global transaction begins its branches. */
export interface GlobalTransactionOptions<C extends TxConnection> {
  /** Sent when a shard joins; 'BEGIN' by default. */
  readonly beginSql?: string;
  /** Runs on each freshly acquired connection before it begins. */
  readonly setup?: (conn: C) => Promise<void>;
  /**
   * Begin every shard's branch at one cut, on the first statement: `beginSql`
   * must then be REPEATABLE READ or SERIALIZABLE (one snapshot per branch).
   * `lockTimeoutMs` bounds the wait for each shard's gate.
   */
  readonly atCut?: { readonly lockTimeoutMs: number };
}

export type GlobalTransactionState = 'active' | 'failed' | 'committed' | 'rolledBack';

/**
 * One global transaction: a local transaction (branch) on each shard it
 * touched, joined lazily, ended together by `commit()` or `rollback()`.
 * Methods other than `fail`, `markWritten` and the state getters must not run
 * concurrently with each other; `participant()` may run for several shards at once.
 */
export class GlobalTransaction<C extends TxConnection> {
  /** `sg_<coordinatorId>_<unique>`: application_name of every branch, and the stem of the gid. */
  readonly id: string;
  /** When begin() was called (ms since the epoch). */
  readonly startedAt = Date.now();
  readonly #ctx: TxContext<C>;
  readonly #beginSql: string;
  readonly #setup: ((conn: C) => Promise<void>) | undefined;
  /** Set when every branch must begin at one cut (consistent cross-shard reads). */
  readonly #atCut: { readonly lockTimeoutMs: number } | undefined;
  #cutting: Promise<void> | undefined;
  readonly #branches = new Map<ShardName, Branch<C>>();
  #writers = 0;
  readonly #joining = new Map<ShardName, Promise<C>>();
  readonly #savepoints: string[] = [];
  #state: GlobalTransactionState = 'active';
  #ending = false;
  #gid: string | undefined;
  #victim: PgError | null = null;
  #reported = false;
  /** A PREPARE of this transaction outlasted the prepare timeout. */
  #prepareTimedOut = false;

  constructor(ctx: TxContext<C>, id: string, opts: GlobalTransactionOptions<C>) {
    this.#ctx = ctx;
    this.id = id;
    this.#beginSql = opts.beginSql ?? 'BEGIN';
    this.#setup = opts.setup;
    this.#atCut = opts.atCut;
  }

  /** True when the branches begin at one cut: every global transaction is seen whole or not at all. */
  get atCut(): boolean {
    return this.#atCut !== undefined;
  }

  get state(): GlobalTransactionState {
    return this.#state;
  }

  /** True from the start of commit() or rollback() until the end. */
  get ending(): boolean {
    return this.#ending;
  }

  /** The gid, once commit() chose an anchor for two-phase commit. */
  get gid(): string | undefined {
    return this.#gid;
  }

  /** The joined shards, each with its connection and whether it was written. */
  get participants(): ReadonlyMap<ShardName, { readonly conn: C; readonly wrote: boolean }> {
    return this.#branches;
  }

  /** Names of the savepoints currently defined, oldest first. */
  get savepoints(): readonly string[] {
    return this.#savepoints;
  }

  /**
   * The shard's connection in this transaction, joining the shard if new:
   * acquire, `setup`, begin, tag the branch with application_name (SET LOCAL,
   * so a pooled connection does not keep it), then re-create the active
   * savepoints so ROLLBACK TO works on shards first touched after a savepoint.
   * When the connection offers `prelude`, these statements are only queued
   * there and go out with the first statement run on it (src/tx/README.md,
   * "Joining a shard"); if they fail, that statement fails with their error
   * without running, and the transaction is in the failed state.
   * Throws 25P02 in the failed state. A failed join leaves the transaction's
   * state alone: the caller reports the statement's error and calls fail().
   */
  async participant(shard: ShardName): Promise<C> {
    this.#assertActive();
    if (this.#atCut !== undefined) {
      if (!this.#ctx.source.shards.includes(shard)) {
        throw sgError('unknownShard', { shard, shards: this.#ctx.source.shards.join(', ') });
      }
      this.#cutting ??= this.#joinAllAtCut(this.#atCut.lockTimeoutMs);
      await this.#cutting;
      this.#assertActive();
    }
    const branch = this.#branches.get(shard);
    if (branch) return branch.conn;
    let joining = this.#joining.get(shard);
    if (!joining) {
      joining = this.#join(shard).finally(() => this.#joining.delete(shard));
      this.#joining.set(shard, joining);
    }
    return joining;
  }

  async #join(shard: ShardName): Promise<C> {
    if (!this.#ctx.source.shards.includes(shard)) {
      throw sgError('unknownShard', { shard, shards: this.#ctx.source.shards.join(', ') });
    }
    const conn = await this.#ctx.source.acquire(shard, this.#ctx.acquireTimeoutMs);
    const branch = new Branch(conn);
    try {
      // Session settings go first, outside the transaction block (rarely anything to send).
      await this.#setup?.(conn);
      await this.#begin(branch, this.#savepoints);
      conn.joinedTransaction?.(this.id);
    } catch (err) {
      conn.release(true);
      throw err;
    }
    this.#branches.set(shard, branch);
    return conn;
  }

  /**
   * Joins every shard at once, each branch begun inside one cut (src/tx/cut.ts):
   * the snapshots of all shards then agree on every global transaction. A cut
   * that fails fails the statement that asked for it; the transaction stays
   * without branches and a later statement may try again.
   */
  async #joinAllAtCut(lockTimeoutMs: number): Promise<void> {
    const acquired: C[] = [];
    try {
      // In shard order, like the gates: with embedded shards (one connection each) an acquire waits for the holder.
      for (const shard of [...this.#ctx.source.shards].sort()) acquired.push(await this.#ctx.source.acquire(shard, this.#ctx.acquireTimeoutMs));
      for (const conn of acquired) await this.#setup?.(conn);
      const statements = [this.#beginSql, `SET LOCAL application_name = ${quoteLiteral(this.id)}`, ...this.#savepoints.map((name) => `SAVEPOINT ${quoteIdent(name)}`)];
      const result = await beginAtCut(acquired, statements, lockTimeoutMs, this.#ctx.failpoints);
      this.#ctx.observer.cutTaken?.(result.holdMs / 1000, result.finished, result.delayed);
    } catch (err) {
      // A connection may still hold a gate or an open transaction: closing it ends both.
      for (const conn of acquired) conn.release(true);
      this.#cutting = undefined;
      throw err;
    }
    for (const conn of acquired) {
      const branch = new Branch(conn);
      branch.start = 'sent';
      conn.joinedTransaction?.(this.id);
      this.#branches.set(conn.shard, branch);
    }
  }

  /**
   * Starts the branch's local transaction with the savepoints `savepoints`:
   * queued ahead of its next statement when the connection can (no round
   * trip; nothing reaches the shard until that statement does), else run now.
   */
  async #begin(branch: Branch<C>, savepoints: readonly string[]): Promise<void> {
    const statements = [
      this.#beginSql,
      // Before any savepoint, so that no ROLLBACK TO can undo it.
      `SET LOCAL application_name = ${quoteLiteral(this.id)}`,
      ...savepoints.map((name) => `SAVEPOINT ${quoteIdent(name)}`),
    ];
    if (branch.conn.prelude?.(statements, (ev) => this.#preludeEvent(branch, ev)) === true) {
      branch.start = 'queued';
      return;
    }
    await branch.conn.exec(statements.join('; '));
    branch.start = 'sent';
  }

  /** What became of a branch's queued BEGIN …; called by its connection, synchronously. */
  #preludeEvent(branch: Branch<C>, ev: PreludeEvent): void {
    if (ev.kind === 'sent') {
      if (branch.start === 'queued') branch.start = 'sent';
      return;
    }
    // BEGIN, SET LOCAL or a SAVEPOINT failed (or the connection broke first): the statement sent with
    // them did not run, and whatever BEGIN opened ends when the connection is closed. The statement
    // reports the error; the transaction is failed, as after any failed statement, so nothing more
    // runs on this connection until ROLLBACK TO begins it afresh (#onEveryBranch) or the end closes it.
    branch.start = 'failed';
    branch.broken = true;
    if (this.#state === 'active' && !this.#ending) this.#state = 'failed';
  }

  /** A branch whose BEGIN is still queued holds nothing on its shard: withdrawn, it is over without a round trip. */
  #leaveUnsent(branches: readonly Branch<C>[]): void {
    for (const b of branches) {
      if (b.start !== 'queued' || b.state !== 'open') continue;
      b.conn.prelude?.([], () => undefined);
      b.state = 'idle';
    }
  }

  /** Records that the shard's branch wrote (so commit() counts it as a writer). */
  markWritten(shard: ShardName): void {
    const branch = this.#branches.get(shard);
    if (!branch) throw sgError('internal', { reason: `markWritten(${shard}) before the shard joined ${this.id}` });
    if (!branch.wrote) branch.firstWrite = ++this.#writers;
    branch.wrote = true;
  }

  /**
   * Hands the shard's connection to `keep` instead of the pool when the
   * transaction commits (a cursor WITH HOLD opened on it lives on after
   * COMMIT). When the transaction does not commit, the connection is closed
   * rather than pooled: a branch that committed before the outcome was known
   * (a read-only participant) may still hold the cursor.
   */
  keepAfterCommit(shard: ShardName, keep: (conn: C) => void): void {
    const branch = this.#branches.get(shard);
    if (!branch) throw sgError('internal', { reason: `keepAfterCommit(${shard}) before the shard joined ${this.id}` });
    branch.keep = keep;
  }

  /**
   * Puts the transaction in the failed state (statements get 25P02 until
   * ROLLBACK or ROLLBACK TO) and returns the error to report: a 57014 caused by
   * the deadlock detector cancelling this transaction becomes 40P01.
   */
  fail(error: PgError): PgError {
    if (this.#state === 'active' && !this.#ending) this.#state = 'failed';
    if (this.#victim !== null && error.code === '57014') {
      const victim = this.#victim;
      this.#victim = null;
      return victim;
    }
    return error;
  }

  /**
   * True (once) when the deadlock detector chose this transaction as a
   * victim; the statement it cancelled then fails with 57014, which the
   * session reports as 40P01 (fail() does this translation itself).
   */
  consumeDeadlockVictim(): boolean {
    const was = this.#victim !== null;
    this.#victim = null;
    return was;
  }

  /** Called by the deadlock detector: marks the victim and cancels its waiting statements. */
  async breakDeadlock(waitingOn: readonly ShardName[], cycleShards: readonly ShardName[]): Promise<boolean> {
    if (this.#state !== 'active' || this.#ending) return false;
    this.#victim = sgError('distributedDeadlock', { shards: [...cycleShards].sort().join(', ') });
    await Promise.all(
      waitingOn.map(async (shard) => {
        const conn = this.#branches.get(shard)?.conn;
        await conn?.cancel().catch((err: unknown) => this.#log('warn', 'cancel of deadlock victim failed', { shard, err: String(err) }));
      }),
    );
    return true;
  }

  /** SAVEPOINT on every joined shard; later joins re-create it. */
  async savepoint(name: string): Promise<void> {
    this.#assertActive();
    await this.#settleJoins();
    await this.#onEveryBranch(`SAVEPOINT ${quoteIdent(name)}`, [...this.#savepoints, name]);
    this.#savepoints.push(name);
  }

  /** RELEASE SAVEPOINT on every joined shard; forgets it and every later savepoint. */
  async release(name: string): Promise<void> {
    this.#assertActive();
    await this.#settleJoins();
    const at = this.#savepoints.lastIndexOf(name);
    if (at < 0) throw this.#failWith(sgError('unknownSavepoint', { name }));
    await this.#onEveryBranch(`RELEASE SAVEPOINT ${quoteIdent(name)}`, this.#savepoints.slice(0, at));
    this.#savepoints.splice(at);
  }

  /** ROLLBACK TO SAVEPOINT on every joined shard; also leaves the failed state, as in PostgreSQL. */
  async rollbackTo(name: string): Promise<void> {
    if (this.#state !== 'failed') this.#assertActive();
    await this.#settleJoins();
    const at = this.#savepoints.lastIndexOf(name);
    if (at < 0) throw this.#failWith(sgError('unknownSavepoint', { name }));
    await this.#onEveryBranch(`ROLLBACK TO SAVEPOINT ${quoteIdent(name)}`, this.#savepoints.slice(0, at + 1));
    this.#savepoints.splice(at + 1);
    this.#victim = null;
    this.#state = 'active';
  }

  /**
   * Commits on every shard, atomically (src/tx/README.md): 0 written shards →
   * COMMIT each; 1 → read-only branches COMMIT first, then the writer; ≥ 2 →
   * read-only branches COMMIT first, then two-phase commit with the decision
   * row on the anchor. Resolves with the tag to report: 'ROLLBACK' when the
   * transaction was in the failed state (it is rolled back) or a shard had
   * silently aborted its part (nothing was committed anywhere). Throws a
   * PgError after making sure nothing is committed anywhere, or 08007 when the
   * anchor could not be asked (recovery settles it). Always releases every connection.
   */
  async commit(): Promise<'COMMIT' | 'ROLLBACK'> {
    if (this.#state === 'failed') {
      await this.rollback();
      return 'ROLLBACK';
    }
    this.#assertActive();
    this.#ending = true;
    let kind: 'local' | 'one_shard' | 'two_phase' = this.#kindNow();
    try {
      await this.#settleJoins();
      const all = [...this.#branches.values()];
      // Joined shards that never got a statement: nothing sent, nothing to commit.
      this.#leaveUnsent(all);
      const branches = all.filter((b) => b.start === 'sent');
      const written = branches.filter((b) => b.wrote);
      const readOnly = branches.filter((b) => !b.wrote);
      let tag: 'COMMIT' | 'ROLLBACK';
      kind = written.length === 0 ? 'local' : written.length === 1 ? 'one_shard' : 'two_phase';
      if (all.some((b) => b.start === 'failed')) {
        // A statement did not run (its BEGIN failed) yet the transaction was not failed: never commit without it.
        await this.#rollbackLocal(branches);
        tag = 'ROLLBACK';
      } else if (written.length === 0) {
        tag = await this.#commitLocal(readOnly);
      } else if (written.length === 1) {
        // Read-only branches leave the vote first. Nothing is committed yet, so a failure here just rolls back.
        const readTag = await this.#commitLocal(readOnly).catch(async (err: unknown) => {
          await this.#rollbackLocal(written);
          throw err;
        });
        if (readTag === 'ROLLBACK') {
          await this.#rollbackLocal(written);
          tag = 'ROLLBACK';
        } else {
          tag = await this.#commitLocal(written);
        }
      } else {
        const anchor = written.reduce((a, b) => (b.firstWrite > a.firstWrite ? b : a));
        tag = await this.#twoPhase([anchor, ...written.filter((b) => b !== anchor)], readOnly);
      }
      this.#state = tag === 'COMMIT' ? 'committed' : 'rolledBack';
      this.#report(kind, tag === 'COMMIT' ? 'commit' : 'rollback');
      return tag;
    } catch (err) {
      if (this.#state !== 'committed') this.#state = 'rolledBack';
      this.#report(kind, 'error');
      throw err;
    } finally {
      this.#finish();
    }
  }

  /** Tells the observer once how the transaction ended. */
  #report(kind: 'local' | 'one_shard' | 'two_phase', outcome: 'commit' | 'rollback' | 'error'): void {
    if (this.#reported) return;
    this.#reported = true;
    this.#ctx.observer.transactionEnded(kind, outcome);
  }

  #kindNow(): 'local' | 'one_shard' | 'two_phase' {
    let written = 0;
    for (const b of this.#branches.values()) if (b.wrote && b.start === 'sent') written++;
    return written === 0 ? 'local' : written === 1 ? 'one_shard' : 'two_phase';
  }

  /** ROLLBACK on every joined shard and release the connections. Never throws for a shard's failure (closing the connection rolls back too). */
  async rollback(): Promise<void> {
    if (this.#ending) return;
    this.#ending = true;
    try {
      await this.#settleJoins();
      await this.#rollbackLocal([...this.#branches.values()]);
      this.#state = 'rolledBack';
    } finally {
      this.#report(this.#kindNow(), 'rollback');
      this.#finish();
    }
  }

  async #twoPhase([anchor, ...others]: [Branch<C>, ...Branch<C>[]], readOnly: readonly Branch<C>[]): Promise<'COMMIT' | 'ROLLBACK'> {
    const gid = gidFor(this.id, anchor.shard);
    this.#gid = gid;
    const participants = others.map((b) => b.shard);
    const fp = this.#ctx.failpoints;

    // Phase 1: prepare every written branch but the anchor's, in parallel. The read-only branches
    // leave the vote at the same time with COMMIT: nothing is decided before every one of these
    // answered, so a read-only branch that fails (40001 under SERIALIZABLE) or had silently aborted
    // still rolls everything back, prepared branches included (ROLLBACK PREPARED).
    const deadline = Date.now() + this.#ctx.prepareTimeoutMs;
    const observer = this.#ctx.observer;
    let started = performance.now();
    const [readResults, results] = await Promise.all([
      Promise.allSettled(readOnly.map(async (b) => this.#commitLocal([b]))),
      Promise.allSettled(
        others.map((b) => withSpan(SPAN.prepare, shardgateAttributes({ gid, shard: b.shard }), () => this.#prepare(b, gid, deadline))),
      ),
    ]);
    observer.phaseTimed('prepare', (performance.now() - started) / 1000);
    const failures = [...rejections(readResults, readOnly), ...rejections(results, others)];
    const silentlyAborted =
      results.some((r) => r.status === 'fulfilled' && !r.value) || readResults.some((r) => r.status === 'fulfilled' && r.value === 'ROLLBACK');
    if (failures.length > 0 || silentlyAborted || Date.now() > deadline) {
      // Rolling back is safe: no decision row exists, so nothing can commit these branches.
      await this.#abort(anchor, others, gid);
      const timedOut = this.#prepareTimedOut || (failures.length === 0 && !silentlyAborted);
      if (timedOut) observer.prepareTimedOut();
      if (failures.length > 0) throw combineErrors(failures);
      if (silentlyAborted) return 'ROLLBACK';
      throw sgError('prepareTimeout', { shard: participants.join(', '), timeoutMs: this.#ctx.prepareTimeoutMs });
    }

    // Phase 2: the decision, committed with the anchor's own writes.
    try {
      await fp.hit('before-decision', anchor.shard);
    } catch (err) {
      await this.#abort(anchor, others, gid);
      throw err;
    }
    try {
      // If we die before this COMMIT reaches the anchor, the anchor's local transaction ends with
      // the connection, no decision row exists, and recovery records 'abort' and rolls back the others.
      started = performance.now();
      const tag = await withSpan(SPAN.decision, shardgateAttributes({ gid, shard: anchor.shard }), () => anchor.conn.exec(commitDecisionSql(gid, participants)));
      observer.phaseTimed('decision', (performance.now() - started) / 1000);
      // If we die after this line, the transaction is committed: recovery finds the prepared branches,
      // reads 'commit' on the anchor and commits them.
      anchor.state = 'idle';
      if (tag !== 'COMMIT') {
        await this.#abort(anchor, others, gid);
        return 'ROLLBACK';
      }
    } catch (err) {
      if (!outcomeUnknown(err)) {
        // The anchor answered with an error: its local transaction, decision included, did not commit.
        await this.#abort(anchor, others, gid);
        const e = err as PgError;
        if (e.code === '23505' && (e.fields.table === 'tx_decision' || e.fields.constraint === 'tx_decision_pkey')) {
          // Recovery took us for dead and recorded 'abort' first; the primary key fenced our commit out.
          throw sgError('commitFenced', { gid });
        }
        throw err;
      }
      // The reply was lost: the decision may or may not have committed. Close the connection (the
      // server ends an uncommitted transaction with it) and fix the outcome the way recovery does.
      anchor.state = 'unknown';
      this.#releaseBranch(anchor);
      let outcome: Outcome;
      try {
        outcome = await this.#ctx.resolve(anchor.shard, gid, participants);
      } catch (resolveErr) {
        // The prepared branches stay: recovery settles them from the anchor once it is reachable.
        this.#log('error', 'commit outcome unknown; left to recovery', { gid, anchor: anchor.shard, err: String(resolveErr) });
        throw sgError('commitOutcomeUnknown', { gid, shard: anchor.shard, reason: asPgError(err, anchor.shard).message });
      }
      if (outcome === 'abort') {
        await this.#abort(anchor, others, gid);
        throw asPgError(err, anchor.shard);
      }
    }
    this.#state = 'committed';

    // Phase 3: COMMIT PREPARED everywhere, then reply.
    try {
      await fp.hit('after-decision', anchor.shard);
    } catch (err) {
      this.#log('warn', 'failpoint after-decision: COMMIT PREPARED handed to recovery', { gid, err: String(err) });
      for (const b of others) this.#ctx.handOff(b.shard, preparedGid(gid, b.shard));
      return 'COMMIT';
    }
    const commitPrepared = async (b: Branch<C>): Promise<void> => {
      const name = preparedGid(gid, b.shard);
      try {
        await withSpan(SPAN.commitPrepared, shardgateAttributes({ gid, shard: b.shard }), () => b.conn.exec(`COMMIT PREPARED ${quoteLiteral(name)}`));
        // If we die after this line (and before the others), recovery commits the remaining branches.
        b.state = 'idle';
      } catch (err) {
        if (err instanceof PgError && err.code === '42704') {
          // Recovery (or another instance) finished it; the decision says commit, so it committed it.
          b.state = 'idle';
        } else {
          // Not a failure of the transaction, which is committed: retried in the background, else recovery.
          b.broken = outcomeUnknown(err);
          this.#log('warn', 'COMMIT PREPARED failed; handed to recovery', { gid, shard: b.shard, err: String(err) });
          this.#ctx.handOff(b.shard, name);
        }
      }
    };
    const between = (b: Branch<C>): Promise<void> =>
      fp.hit('between-commit-prepared', b.shard).catch((err: unknown) => this.#log('warn', 'failpoint between-commit-prepared', { gid, err: String(err) }));
    started = performance.now();
    if (fp.active) {
      // With failpoints configured the first branch commits alone, so that between-commit-prepared
      // falls between two COMMIT PREPAREDs (crash tests); otherwise all go out at once.
      const [first, ...rest] = others as [Branch<C>, ...Branch<C>[]];
      await commitPrepared(first);
      if (rest.length > 0) await between(first);
      let outstanding = rest.length;
      await Promise.all(
        rest.map(async (b) => {
          await commitPrepared(b);
          outstanding -= 1;
          if (outstanding > 0) await between(b);
        }),
      );
    } else {
      await Promise.all(others.map(commitPrepared));
    }
    observer.phaseTimed('commit_prepared', (performance.now() - started) / 1000);
    return 'COMMIT';
  }

  /** PREPARE TRANSACTION under the deadline; false when the shard had silently aborted the branch. */
  async #prepare(b: Branch<C>, gid: string, deadline: number): Promise<boolean> {
    const name = preparedGid(gid, b.shard);
    await this.#ctx.failpoints.hit('before-prepare', b.shard);
    // If we die once this is sent, the branch may be prepared with no decision row: recovery
    // records 'abort' on the anchor and rolls it back.
    const statement = b.conn.exec(`PREPARE TRANSACTION ${quoteLiteral(name)}`);
    let settled = await settleWithin(statement, deadline - Date.now());
    const timedOut = settled.kind === 'timeout';
    if (timedOut) {
      this.#prepareTimedOut = true;
      // Not awaited: a cancel request waits for the server to close its socket, and a server that
      // does not answer (stopped, partitioned) would hold it for the transport's own cancel timeout
      // on top of the grace below, keeping the client waiting several times prepareTimeoutMs.
      void b.conn.cancel().catch((err: unknown) => this.#log('warn', 'cancel of PREPARE failed', { gid, shard: b.shard, err: String(err) }));
      settled = await settleWithin(statement, CANCEL_GRACE_MS);
    }
    if (settled.kind === 'ok') {
      b.state = settled.value === 'PREPARE TRANSACTION' ? 'prepared' : 'idle';
    } else if (settled.kind === 'error') {
      // A PREPARE that fails rolls the branch back, unless the connection broke mid-way.
      b.state = outcomeUnknown(settled.error) ? 'unknown' : 'idle';
    } else {
      // Never answered: maybe prepared. We never record 'commit' for this gid, so recovery aborts it.
      b.state = 'unknown';
    }
    if (timedOut) throw sgError('prepareTimeout', { shard: b.shard, timeoutMs: this.#ctx.prepareTimeoutMs });
    if (settled.kind === 'error') throw asPgError(settled.error, b.shard);
    if (b.state !== 'prepared') return false;
    await this.#ctx.failpoints.hit('after-prepare', b.shard);
    return true;
  }

  /** Rolls back a two-phase commit that has no 'commit' decision. */
  async #abort(anchor: Branch<C>, others: readonly Branch<C>[], gid: string): Promise<void> {
    await Promise.all([
      this.#rollbackLocal([anchor, ...others.filter((b) => b.state === 'open')]),
      ...others
        .filter((b) => b.state === 'prepared')
        .map(async (b) => {
          try {
            await b.conn.exec(`ROLLBACK PREPARED ${quoteLiteral(preparedGid(gid, b.shard))}`);
            b.state = 'idle';
          } catch (err) {
            // 42704: recovery rolled it back already. Anything else: recovery will, since no 'commit' row exists.
            if (err instanceof PgError && err.code === '42704') b.state = 'idle';
            else {
              b.broken = outcomeUnknown(err);
              this.#log('warn', 'ROLLBACK PREPARED failed; left to recovery', { gid, shard: b.shard, err: String(err) });
            }
          }
        }),
    ]);
  }

  /** COMMIT on each branch in parallel; 'ROLLBACK' when a shard reports its part was aborted. */
  async #commitLocal(branches: readonly Branch<C>[]): Promise<'COMMIT' | 'ROLLBACK'> {
    const tags = await this.#parallel(branches, async (b) => {
      const tag = await b.conn.exec('COMMIT');
      b.state = 'idle';
      return tag;
    });
    return tags.every((t) => t === 'COMMIT') ? 'COMMIT' : 'ROLLBACK';
  }

  /**
   * ROLLBACK on each open branch; a failure closes that connection, which
   * rolls back too. A branch whose BEGIN is still queued needs nothing sent; one
   * whose BEGIN failed is broken, and closing its connection ends what it opened.
   */
  async #rollbackLocal(branches: readonly Branch<C>[]): Promise<void> {
    this.#leaveUnsent(branches);
    await Promise.all(
      branches
        .filter((b) => b.state === 'open' && b.start === 'sent')
        .map(async (b) => {
          try {
            await b.conn.exec('ROLLBACK');
            b.state = 'idle';
          } catch (err) {
            b.broken = true;
            this.#log('warn', 'ROLLBACK failed; closing the connection', { gid: this.#gid ?? this.id, shard: b.shard, err: String(err) });
          }
        }),
    );
  }

  /**
   * Runs a savepoint statement on every branch whose BEGIN went out; `after`
   * is the savepoint list once it succeeded. A branch whose BEGIN is still
   * queued has nothing to undo or release: its queued statements are replaced
   * by a fresh join's, with `after`. A branch whose BEGIN failed ran nothing
   * of the transaction: ROLLBACK ends what BEGIN may have opened, and it
   * begins afresh like a new join (only ROLLBACK TO, out of the failed state,
   * meets one).
   */
  async #onEveryBranch(sql: string, after: readonly string[]): Promise<void> {
    const branches = [...this.#branches.values()];
    await this.#parallel(
      branches.filter((b) => b.start !== 'queued'),
      async (b) => {
        if (b.start === 'sent') return b.conn.exec(sql);
        await b.conn.exec('ROLLBACK');
        b.broken = false;
        await this.#begin(b, after);
        return '';
      },
    ).catch((err: unknown) => {
      throw this.#failWith(asPgError(err, '?'));
    });
    for (const b of branches) if (b.start === 'queued') await this.#begin(b, after);
  }

  /** Runs `fn` on each branch in parallel; rejects with the combined error when any failed. */
  async #parallel<T>(branches: readonly Branch<C>[], fn: (b: Branch<C>) => Promise<T>): Promise<T[]> {
    const results = await Promise.allSettled(branches.map(fn));
    const failures = results.flatMap((r, i) => {
      if (r.status === 'fulfilled') return [];
      const b = branches[i]!;
      if (outcomeUnknown(r.reason)) b.broken = true;
      return [{ shard: b.shard, error: r.reason as unknown }];
    });
    if (failures.length > 0) throw combineErrors(failures);
    return results.map((r) => (r as PromiseFulfilledResult<T>).value);
  }

  #failWith(error: PgError): PgError {
    this.fail(error);
    return error;
  }

  #assertActive(): void {
    if (this.#state === 'failed') throw sgError('inFailedTransaction');
    if (this.#state !== 'active' || this.#ending) {
      throw sgError('internal', { reason: `global transaction ${this.id} is ${this.#ending ? 'ending' : this.#state}` });
    }
  }

  async #settleJoins(): Promise<void> {
    while (this.#joining.size > 0) await Promise.allSettled([...this.#joining.values()]);
  }

  #releaseBranch(b: Branch<C>): void {
    if (b.released) return;
    b.released = true;
    const clean = !b.broken && b.state !== 'open' && b.state !== 'unknown';
    if (b.keep !== undefined && clean && this.#state === 'committed') {
      b.keep(b.conn);
      return;
    }
    // A branch still open or in an unknown state must not go back to the pool, nor one that may hold a cursor WITH HOLD.
    b.conn.release(!clean || b.keep !== undefined);
  }

  #finish(): void {
    for (const b of this.#branches.values()) this.#releaseBranch(b);
    this.#victim = null;
    this.#ctx.finished(this);
  }

  #log(level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown>): void {
    this.#ctx.log(level, msg, fields);
  }
}

/** The branches whose settled operation failed, with their errors (results in branch order). */
function rejections<C extends TxConnection>(results: readonly PromiseSettledResult<unknown>[], branches: readonly Branch<C>[]): { shard: ShardName; error: unknown }[] {
  return results.flatMap((r, i) => (r.status === 'rejected' ? [{ shard: branches[i]!.shard, error: r.reason as unknown }] : []));
}
