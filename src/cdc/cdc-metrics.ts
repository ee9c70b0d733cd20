import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { LATENCY_BUCKETS } from '../observe/metrics.js';
import type { CdcEvent } from './assembler.js';

/** A shard's replication slot as `pg_replication_slots` reports it, for the retained-WAL gauge. */
export interface SlotReading {
  readonly shard: string;
  readonly slot: string;
  /** Bytes of WAL the server keeps for the slot (current WAL position minus the slot's restart_lsn); null when unknown. */
  readonly retainedBytes: number | null;
  readonly active: boolean;
}

/**
 * The Prometheus metrics of `shardgate cdc`, in a registry of their own.
 * Label values are shard and slot names from the configuration, so
 * cardinality is bounded by it. Retained WAL is read from a callback at
 * scrape time (a query per shard), never pushed.
 */
export class CdcMetrics {
  static readonly contentType = 'text/plain; version=0.0.4; charset=utf-8';

  readonly #registry = new Registry();
  readonly #events: Counter<'kind'>;
  readonly #changes: Counter;
  readonly #sinkSeconds: Histogram;
  readonly #sinkFailures: Counter;
  readonly #restarts: Counter;
  readonly #lagBytes: Gauge<'shard'>;
  readonly #lagSeconds: Gauge<'shard'>;
  readonly #held: Gauge;
  readonly #pending: Gauge;
  readonly #heldBytes: Gauge;
  readonly #waitingParts: Gauge<'shard'>;
  readonly #readingPaused: Gauge<'shard'>;
  readonly #spillFiles: Gauge;

  constructor(readSlots?: () => Promise<readonly SlotReading[]>) {
    const registers = [this.#registry];
    this.#events = new Counter({ name: 'shardgate_cdc_events_total', help: 'Transactions handed to the sink and acknowledged, by kind (local, global).', labelNames: ['kind'], registers });
    this.#changes = new Counter({ name: 'shardgate_cdc_changes_total', help: 'Row changes in the acknowledged events.', registers });
    this.#sinkSeconds = new Histogram({
      name: 'shardgate_cdc_sink_seconds',
      help: 'Time for the sink to acknowledge one batch of events.',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#sinkFailures = new Counter({ name: 'shardgate_cdc_sink_failures_total', help: 'Batches the sink failed to acknowledge (sent again).', registers });
    this.#restarts = new Counter({ name: 'shardgate_cdc_restarts_total', help: 'Times the streams were restarted from the slots after a failure.', registers });
    this.#lagBytes = new Gauge({
      name: 'shardgate_cdc_lag_bytes',
      help: "WAL bytes between the server's current position and the slot position the sink's acknowledgements allow confirming, by shard.",
      labelNames: ['shard'],
      registers,
    });
    this.#lagSeconds = new Gauge({
      name: 'shardgate_cdc_lag_seconds',
      help: 'Age of the oldest transaction read and not yet acknowledged by the sink, by shard; 0 when none waits.',
      labelNames: ['shard'],
      registers,
    });
    this.#held = new Gauge({ name: 'shardgate_cdc_held_transactions', help: 'Global transactions with a part read, waiting for their other parts.', registers });
    this.#pending = new Gauge({ name: 'shardgate_cdc_pending_events', help: 'Events assembled and not yet acknowledged by the sink.', registers });
    this.#heldBytes = new Gauge({ name: 'shardgate_cdc_held_memory_bytes', help: 'Bytes of changes held in memory (read, not yet acknowledged by the sink); bounded by --memory-limit.', registers });
    this.#spillFiles = new Gauge({ name: 'shardgate_cdc_spill_files', help: 'Spill files that exist now: the changes, or the row keys, of transaction parts.', registers });
    this.#waitingParts = new Gauge({
      name: 'shardgate_cdc_waiting_parts',
      help: 'Transaction parts committed on the shard and waiting to be emitted (behind a global transaction missing a part of another shard), by shard; bounded by --max-waiting-parts while the shard is not awaited.',
      labelNames: ['shard'],
      registers,
    });
    this.#readingPaused = new Gauge({
      name: 'shardgate_cdc_reading_paused',
      help: '1 while the shard is not read because --max-waiting-parts of its parts wait for a lagging shard, by shard.',
      labelNames: ['shard'],
      registers,
    });
    if (readSlots !== undefined) {
      // One query per shard per scrape, shared by both gauges: the first collect reads, the second reuses.
      let reading: Promise<readonly SlotReading[]> | null = null;
      const read = (): Promise<readonly SlotReading[]> => {
        reading ??= readSlots()
          .catch(() => [])
          .finally(() => setImmediate(() => (reading = null)));
        return reading;
      };
      new Gauge({
        name: 'shardgate_cdc_slot_retained_wal_bytes',
        help: 'WAL the server keeps for the replication slot (alert when it grows: the disk fills while the slot is not consumed).',
        labelNames: ['shard', 'slot'],
        registers,
        async collect() {
          this.reset();
          for (const r of await read()) if (r.retainedBytes !== null) this.set({ shard: r.shard, slot: r.slot }, r.retainedBytes);
        },
      });
      new Gauge({
        name: 'shardgate_cdc_slot_active',
        help: '1 when a process streams from the slot.',
        labelNames: ['shard', 'slot'],
        registers,
        async collect() {
          this.reset();
          for (const r of await read()) this.set({ shard: r.shard, slot: r.slot }, r.active ? 1 : 0);
        },
      });
    }
  }

  /** A batch the sink acknowledged, and how long it took. */
  sent(events: readonly CdcEvent[], seconds: number): void {
    for (const e of events) {
      this.#events.inc({ kind: e.kind });
      this.#changes.inc(e.changeCount);
    }
    this.#sinkSeconds.observe(seconds);
  }

  sinkFailed(): void {
    this.#sinkFailures.inc();
  }

  restarted(): void {
    this.#restarts.inc();
  }

  lag(shard: string, bytes: number, seconds: number): void {
    this.#lagBytes.set({ shard }, bytes);
    this.#lagSeconds.set({ shard }, seconds);
  }

  /** Parts waiting on `shard`, and whether its reading is paused by the bound on them. */
  waiting(shard: string, parts: number, paused: boolean): void {
    this.#waitingParts.set({ shard }, parts);
    this.#readingPaused.set({ shard }, paused ? 1 : 0);
  }

  spill(memoryBytes: number, files: number): void {
    this.#heldBytes.set(memoryBytes);
    this.#spillFiles.set(files);
  }

  held(globals: number, pendingEvents: number): void {
    this.#held.set(globals);
    this.#pending.set(pendingEvents);
  }

  /** The exposition text. */
  text(): Promise<string> {
    return this.#registry.metrics();
  }
}
