import type { ShardName } from '../config/names.js';
import { Assembler, type CdcEvent } from './assembler.js';
import type { CdcMetrics } from './cdc-metrics.js';
import { isPermanentSinkError, type CdcSink } from './cdc-sink.js';
import { PgoutputDecoder } from './decode-pgoutput.js';
import { formatLsn, pgTimestampToDate, type Lsn, type PgTimestamp } from './lsn.js';
import { ReplicationClient, type ReplicationTarget } from './replication-client.js';
import { SpillStore } from './spill.js';

/** One shard to capture: where it is and which replication objects to use. */
export interface CdcShardTarget extends ReplicationTarget {
  readonly name: string;
  readonly url: string;
}

/** Log levels the runner reports at (pino's). */
export type CdcLog = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

/** Options of `CdcRunner`. */
export interface CdcRunnerOptions {
  readonly shards: readonly CdcShardTarget[];
  readonly sink: CdcSink;
  /** Transactions the starting copy already holds (by shard and xid): read, never emitted. */
  readonly skip?: (shard: string, xid: number) => boolean;
  /** Events emitted and not yet acknowledged by the sink above which the streams stop being read; default 5000. */
  readonly maxPendingEvents?: number;
  /**
   * Where changes go when those held in memory (transactions read and not yet
   * acknowledged by the sink) pass `memoryLimit` bytes: the directory is
   * emptied at every start (see spill.ts). Without it nothing spills.
   */
  readonly spill?: { readonly dir: string; readonly memoryLimit: number };
  /**
   * Parts committed on a shard and waiting to be emitted (behind a global
   * transaction whose other parts another, lagging shard has not sent yet)
   * at which that shard stops being read, unless a held transaction waits for
   * its stream; default 10000. See README.md "Bound on waiting parts".
   */
  readonly maxWaitingParts?: number;
  /** Most events handed to the sink at once; default 500. */
  readonly batchSize?: number;
  /** How often each slot's confirmed position is reported; default 1000 ms. */
  readonly statusIntervalMs?: number;
  /** Waits between attempts after a failure (sink or shard), doubling from the first to the second; default 200 ms to 10 s. */
  readonly backoffMs?: readonly [number, number];
  readonly log: CdcLog;
  readonly metrics?: CdcMetrics;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}

/** A promise with its resolver, re-armed after each use. */
class Signal {
  #resolve: (() => void) | null = null;
  #promise: Promise<void> | null = null;
  wait(): Promise<void> {
    this.#promise ??= new Promise((r) => (this.#resolve = r));
    return this.#promise;
  }
  fire(): void {
    const r = this.#resolve;
    this.#resolve = null;
    this.#promise = null;
    r?.();
  }
}

/**
 * `shardgate cdc`'s engine: one walsender session per shard, their pgoutput
 * streams assembled into whole transactions (assembler.ts), handed in order
 * to the sink, and each slot confirmed only below what the sink
 * acknowledged. See README.md "The cdc command" for why nothing is lost and
 * no global transaction is ever emitted in part.
 *
 * Any failure — a shard going away, a stream ending, a malformed message —
 * ends the attempt: every session is closed and a new attempt starts from
 * the slots' confirmed positions with a fresh assembler, as after a crash of
 * the process. A sink failure is retried without restarting: the streams
 * stop being read meanwhile, which is the back-pressure on the servers.
 */
export class CdcRunner {
  readonly #opts: CdcRunnerOptions;
  readonly #max: number;
  readonly #batch: number;
  readonly #maxWaiting: number;

  constructor(opts: CdcRunnerOptions) {
    this.#opts = opts;
    this.#max = opts.maxPendingEvents ?? 5000;
    this.#maxWaiting = opts.maxWaitingParts ?? 10_000;
    this.#batch = opts.batchSize ?? 500;
  }

  /** Runs until `signal` aborts; then sends what is pending, confirms it, and resolves. */
  async run(signal: AbortSignal): Promise<void> {
    const [first, most] = this.#opts.backoffMs ?? [200, 10_000];
    let wait = first;
    while (!signal.aborted) {
      const started = Date.now();
      try {
        await this.#attempt(signal);
      } catch (err) {
        if (signal.aborted) break;
        // Sending again cannot cure it (an event larger than the broker takes): stop and say so.
        if (isPermanentSinkError(err)) throw err;
        this.#opts.metrics?.restarted();
        this.#opts.log('warn', 'change data capture restarts from the slots', { err: (err as Error).message, shard: (err as { shard?: unknown }).shard });
        // A run that lasted a while was healthy: start the backoff over.
        if (Date.now() - started > most) wait = first;
        await pause(wait, signal);
        wait = Math.min(most, wait * 2);
      }
    }
  }

  async #attempt(signal: AbortSignal): Promise<void> {
    const { shards, sink, log, metrics } = this.#opts;
    const clients = new Map<string, ReplicationClient>();
    const failed = new AbortController();
    let failure: unknown = null;
    const fail = (err: unknown): void => {
      if (failure === null) failure = err;
      failed.abort();
    };
    const onAbort = (): void => failed.abort();
    // One promise for the whole attempt: the loops race it at every wait without adding a listener each time.
    const ended = aborted(failed.signal);
    signal.addEventListener('abort', onAbort, { once: true });
    let ticker: NodeJS.Timeout | undefined;
    let readers: Promise<void>[] = [];
    // Every attempt starts from the slots, so what an earlier one (or process) spilled is worthless: emptied.
    const store = this.#opts.spill === undefined ? SpillStore.inMemory() : SpillStore.open(this.#opts.spill.dir, this.#opts.spill.memoryLimit);
    try {
      for (const s of shards) clients.set(s.name, await ReplicationClient.connect(s.name as ShardName, s.url));
      const startAt = new Map<string, Lsn>();
      const before = new Map<string, Lsn>();
      for (const s of shards) {
        const c = clients.get(s.name)!;
        startAt.set(s.name, await c.ensure(s));
        before.set(s.name, await c.walPosition());
      }
      // Read after every `before`: see Assembler.settleRestart.
      const readPast = new Map<string, Lsn>();
      for (const s of shards) readPast.set(s.name, await clients.get(s.name)!.walPosition());
      const assembler = new Assembler(
        shards.map((s) => s.name),
        startAt,
        { store, ...(this.#opts.skip === undefined ? {} : { skip: this.#opts.skip }) },
      );
      for (const s of shards) await clients.get(s.name)!.start(s);
      log('info', 'change data capture streaming', { sink: sink.name, from: Object.fromEntries([...startAt].map(([s, l]) => [s, formatLsn(l)])) });

      const pending: CdcEvent[] = [];
      let sending = 0;
      const space = new Signal();
      const work = new Signal();
      // Fired after every message read: a shard held back by the bound on waiting parts looks again.
      const moved = new Signal();
      const paused = new Set<string>();
      /**
       * The bound on waiting parts: a shard whose parts wait (behind a global transaction that misses a
       * part from a lagging shard) is not read further, unless its own stream is awaited. The shards
       * that are awaited are always read, so the wait always ends (README.md "Bound on waiting parts").
       * Until the restart is settled every shard is read: settling needs each one read to `readPast`.
       */
      const heldBack = (shard: string): boolean => settled && assembler.waitingParts(shard) >= this.#maxWaiting && !assembler.awaited(shard);
      let settled = false;
      const serverEnd = new Map<string, Lsn>();
      const enqueue = (events: readonly CdcEvent[]): void => {
        if (events.length === 0) return;
        pending.push(...events);
        work.fire();
      };
      const status = (shard: string, replyRequested: boolean): void => clients.get(shard)!.status(assembler.confirmable(shard), replyRequested);
      const report = (): void => {
        for (const s of shards) {
          // Until the restart is settled, ask for keepalives: an idle shard's stream advances through them.
          status(s.name, !settled);
          if (metrics !== undefined) {
            const confirmed = assembler.confirmable(s.name);
            const end = serverEnd.get(s.name) ?? confirmed;
            const oldest = assembler.oldestPending(s.name);
            const lagSeconds = oldest === null ? 0 : Math.max(0, (Date.now() - pgTimestampToDate(oldest as PgTimestamp).getTime()) / 1000);
            metrics.lag(s.name, end > confirmed ? Number(end - confirmed) : 0, lagSeconds);
            metrics.waiting(s.name, assembler.waitingParts(s.name), paused.has(s.name));
          }
        }
        metrics?.held(assembler.held, pending.length + sending);
        metrics?.spill(store.memoryBytes, store.files);
      };
      const settle = (): void => {
        if (settled || !shards.every((s) => assembler.readTo(s.name) >= readPast.get(s.name)!)) return;
        settled = true;
        const { dropped, events } = assembler.settleRestart(before, readPast);
        if (dropped > 0) log('info', 'global transactions emitted before the restart were not emitted again', { dropped });
        enqueue(events);
      };

      const readShard = async (s: CdcShardTarget): Promise<void> => {
        const client = clients.get(s.name)!;
        const decoder = new PgoutputDecoder();
        while (!failed.signal.aborted) {
          while (pending.length + sending >= this.#max && !failed.signal.aborted) await Promise.race([space.wait(), ended]);
          while (heldBack(s.name) && !failed.signal.aborted) {
            paused.add(s.name);
            await Promise.race([moved.wait(), ended]);
          }
          paused.delete(s.name);
          if (failed.signal.aborted) return;
          const m = await client.next();
          if (m === null) throw new Error(`shard ${s.name} ended the replication stream`);
          if (m.walEnd > (serverEnd.get(s.name) ?? 0n)) serverEnd.set(s.name, m.walEnd);
          if (m.kind === 'XLogData') enqueue(assembler.push(s.name, decoder.decode(m.data)));
          else {
            assembler.idle(s.name, m.walEnd);
            if (m.replyRequested) status(s.name, false);
          }
          settle();
          moved.fire();
        }
      };

      const deliver = async (): Promise<void> => {
        let wait = 50;
        for (;;) {
          if (pending.length === 0) {
            if (failed.signal.aborted) return;
            await Promise.race([work.wait(), ended]);
            continue;
          }
          const batch = pending.splice(0, this.#batch);
          sending = batch.length;
          for (;;) {
            const t0 = performance.now();
            try {
              await sink.send(batch);
              metrics?.sent(batch, (performance.now() - t0) / 1000);
              wait = 50;
              break;
            } catch (err) {
              metrics?.sinkFailed();
              // Sending again cannot cure it: the attempt ends with it, and so does the command (see run).
              if (isPermanentSinkError(err)) throw err;
              log('warn', 'the sink did not take the events; sending them again', { sink: sink.name, events: batch.length, err: (err as Error).message });
              // A failed attempt gives up (its events come again from the slots); stopping tries a few more times.
              if (failure !== null || (signal.aborted && wait >= 1000)) throw err;
              await pause(wait, NEVER);
              wait = Math.min(5000, wait * 2);
            }
          }
          for (const e of batch) assembler.acknowledge(e);
          sending = 0;
          space.fire();
        }
      };

      report();
      ticker = setInterval(report, this.#opts.statusIntervalMs ?? 1000);
      // A reader's error after the attempt ended (its session closed under it) is not a failure.
      readers = shards.map((s) => readShard(s).catch((err: unknown) => (failed.signal.aborted ? undefined : fail(err))));
      const delivering = deliver().catch(fail);
      await Promise.race([ended, Promise.all(readers)]);
      // Stopping or failed: the readers stop; what was assembled is still handed to the sink.
      await delivering;
      // Stopping cleanly: confirm what the sink took. The walsender handles the update before the Terminate that follows it.
      if (failure === null) for (const s of shards) status(s.name, false);
    } finally {
      clearInterval(ticker);
      signal.removeEventListener('abort', onAbort);
      failed.abort();
      await Promise.all([...clients.values()].map((c) => c.close().catch(() => undefined)));
      await Promise.all(readers);
      store.close();
    }
    if (failure !== null) throw failure;
  }
}

/** A signal that never aborts: a wait that only time ends. */
const NEVER = new AbortController().signal;

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
