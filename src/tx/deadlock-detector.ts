import type { ShardName } from '../config/names.js';
import { isTransactionId } from './gid.js';
import type { TxConnection, TxConnectionSource, TxLog, TxObserver } from './types.js';

/** On `shard`, a branch of `waiter` waits for a lock that a branch of `holder` holds. */
export interface WaitEdge {
  readonly waiter: string;
  readonly holder: string;
  readonly shard: ShardName;
}

/** A cycle of waits spanning at least two shards, and the transaction chosen to break it. */
export interface DeadlockCycle {
  /** Transaction ids in wait order: each waits for the next, the last for the first. */
  readonly cycle: readonly string[];
  readonly shards: readonly ShardName[];
  /** The youngest transaction in the cycle (latest start; ties broken by id). */
  readonly victim: string;
  /** The shards on which the victim waits inside the cycle. */
  readonly victimWaitsOn: readonly ShardName[];
}

const MAX_CYCLES = 1_000;

/**
 * Finds the wait cycles that span two or more shards (single-shard cycles are
 * PostgreSQL's own to break) and picks one victim per cycle, skipping cycles
 * already broken by an earlier victim. Every instance looking at the same
 * graph picks the same victims. `starts` maps ids to start times; unknown
 * ids count as oldest.
 */
export function findDeadlocks(edges: readonly WaitEdge[], starts: ReadonlyMap<string, number>): DeadlockCycle[] {
  // waiter → holder → shards of that wait
  const graph = new Map<string, Map<string, Set<ShardName>>>();
  for (const e of edges) {
    if (e.waiter === e.holder) continue;
    const out = graph.get(e.waiter) ?? new Map<string, Set<ShardName>>();
    graph.set(e.waiter, out);
    const shards = out.get(e.holder) ?? new Set<ShardName>();
    out.set(e.holder, shards);
    shards.add(e.shard);
  }
  const nodes = [...graph.keys()].sort();
  const cycles: string[][] = [];
  // Simple cycles, each found once from its smallest node (the graph is the handful of waiting transactions).
  for (const start of nodes) {
    const path = [start];
    const onPath = new Set(path);
    const walk = (node: string): void => {
      for (const next of [...(graph.get(node)?.keys() ?? [])].sort()) {
        if (cycles.length >= MAX_CYCLES) return;
        if (next === start) cycles.push([...path]);
        else if (next > start && !onPath.has(next)) {
          path.push(next);
          onPath.add(next);
          walk(next);
          onPath.delete(next);
          path.pop();
        }
      }
    };
    walk(start);
  }
  const age = (id: string): number => starts.get(id) ?? Number.NEGATIVE_INFINITY;
  const younger = (a: string, b: string): string => (age(a) > age(b) || (age(a) === age(b) && a > b) ? a : b);
  const result: DeadlockCycle[] = [];
  const victims = new Set<string>();
  for (const cycle of cycles) {
    const hops = cycle.map((id, i) => ({ from: id, shards: graph.get(id)!.get(cycle[(i + 1) % cycle.length]!)! }));
    const all = new Set(hops.flatMap((h) => [...h.shards]));
    // It spans shards unless every wait in it is on one and the same shard.
    if (all.size < 2) continue;
    if (cycle.some((id) => victims.has(id))) continue;
    const victim = cycle.reduce(younger);
    victims.add(victim);
    result.push({ cycle, shards: [...all].sort(), victim, victimWaitsOn: [...hops.find((h) => h.from === victim)!.shards] });
  }
  return result;
}

/** What the detector can do to a transaction of this instance. */
export interface DeadlockParticipant {
  readonly id: string;
  breakDeadlock(waitingOn: readonly ShardName[], cycleShards: readonly ShardName[]): Promise<boolean>;
}

export interface DeadlockDetectorOptions<C extends TxConnection> {
  readonly source: TxConnectionSource<C>;
  readonly intervalMs: number;
  readonly acquireTimeoutMs: number;
  readonly log: TxLog;
  readonly observer?: TxObserver;
  /** This instance's live global transactions by id. */
  readonly transactions: () => ReadonlyMap<string, DeadlockParticipant>;
}

/**
 * Edges on one shard: waiting backends tagged with one of our ids and the
 * backends blocking them (pg_blocking_pids), mapped to ids through
 * application_name. Needs the same role as the branches (or pg_read_all_stats)
 * to see their application_name.
 */
const EDGES_SQL = `
SELECT w.application_name, h.application_name,
       floor(extract(epoch FROM w.xact_start) * 1000)::bigint, floor(extract(epoch FROM h.xact_start) * 1000)::bigint
FROM pg_stat_activity w
CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS b(pid)
JOIN pg_stat_activity h ON h.pid = b.pid
WHERE w.wait_event_type = 'Lock' AND w.datname = current_database()
  AND w.application_name LIKE 'sg\\_%' AND h.application_name LIKE 'sg\\_%'`;

/**
 * Breaks deadlocks that span shards: every `intervalMs` while this instance
 * has a live global transaction, collects lock waits from every shard, finds
 * cycles (findDeadlocks) and cancels the victim's waiting statements when the
 * victim is ours (another instance breaks its own). The victim's statement
 * then fails with 40P01 (GlobalTransaction.fail).
 */
export class DeadlockDetector<C extends TxConnection> {
  readonly #opts: DeadlockDetectorOptions<C>;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;
  #stopped = true;

  constructor(opts: DeadlockDetectorOptions<C>) {
    this.#opts = opts;
  }

  start(): void {
    if (!this.#stopped || this.#opts.intervalMs <= 0) return;
    this.#stopped = false;
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = (this.#opts.transactions().size > 0 ? this.check() : Promise.resolve([]))
        .catch((err: unknown) => this.#opts.log('warn', 'deadlock check failed', { err: String(err) }))
        .finally(() => this.#schedule());
    }, this.#opts.intervalMs);
    this.#timer.unref();
  }

  /** One check; returns the cycles found (including those whose victim belongs to another instance). */
  async check(): Promise<DeadlockCycle[]> {
    const { source } = this.#opts;
    const shards = source.shards.filter((s) => !(source.exclusive?.(s) ?? false));
    const edges: WaitEdge[] = [];
    const starts = new Map<string, number>();
    const note = (id: string, start: string | null | undefined): void => {
      const t = Number(start);
      if (typeof start === 'string' && Number.isFinite(t)) starts.set(id, Math.min(starts.get(id) ?? t, t));
    };
    await Promise.all(
      shards.map(async (shard) => {
        let conn: C;
        try {
          conn = await source.acquire(shard, Math.min(this.#opts.acquireTimeoutMs, this.#opts.intervalMs * 4));
        } catch {
          return; // A busy or unreachable shard is looked at next time.
        }
        let ok = false;
        try {
          for (const [waiter, holder, waiterStart, holderStart] of await conn.rows(EDGES_SQL)) {
            if (!isTransactionId(waiter) || !isTransactionId(holder)) continue;
            edges.push({ waiter, holder, shard });
            note(waiter, waiterStart);
            note(holder, holderStart);
          }
          ok = true;
        } finally {
          conn.release(!ok);
        }
      }),
    );
    if (edges.length < 2) return [];
    const cycles = findDeadlocks(edges, starts);
    const ours = this.#opts.transactions();
    for (const c of cycles) {
      const tx = ours.get(c.victim);
      if (!tx) continue;
      if (await tx.breakDeadlock(c.victimWaitsOn, c.shards)) {
        this.#opts.observer?.deadlockBroken();
        this.#opts.log('warn', 'distributed deadlock broken', { gid: c.victim, victim: c.victim, cycle: c.cycle, shards: c.shards });
      }
    }
    return cycles;
  }
}
