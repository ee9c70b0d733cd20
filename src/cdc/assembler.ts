import { parsePreparedGid } from '../tx/gid.js';
import { formatLsn, type Lsn } from './lsn.js';
import type { PgoutputMessage, RelationColumn, TupleData } from './pgoutput-message.js';
import { ROW_KEYS_IN_MEMORY, RowKeys, type RowWrite } from './row-keys.js';
import { SpillStore, type ChangeLog } from './spill.js';

/** One row change of an emitted transaction; values are PostgreSQL's text form, null for NULL. */
export interface CdcChange {
  /** `schema.table`. */
  readonly table: string;
  readonly op: 'insert' | 'update' | 'delete' | 'truncate';
  /** Replica identity (key or whole old row) for update and delete; null when the server sent none. */
  readonly old: Readonly<Record<string, string | null>> | null;
  /** The new row for insert and update; unchanged TOASTed columns are absent. */
  readonly new: Readonly<Record<string, string | null>> | null;
}

/**
 * One committed transaction as the application committed it, all shards
 * together. Its changes may lie in spill files (spill.ts): sinks stream them
 * with `changeJson()`; `changes` reads them all into memory.
 */
export interface CdcEvent {
  /**
   * Stable across restarts: the gid for a two-phase transaction,
   * `<shard>:<commit LSN>` for one that committed on one shard.
   */
  readonly id: string;
  readonly kind: 'local' | 'global';
  /** The commit time the shard reported (the anchor's for a global transaction), in microseconds since 2000-01-01. */
  readonly commitTime: bigint;
  /** Shards whose parts the event holds, in the order the changes are listed (anchor first). */
  readonly shards: readonly string[];
  /** How many changes the event holds. */
  readonly changeCount: number;
  /** Every change, read into memory (parsed again on each use): for small events and tests; sinks use `changeJson`. */
  readonly changes: readonly CdcChange[];
  /** Each change as its JSON text (`{"table","op","old","new"}`), in order, read back a piece at a time when spilled. */
  changeJson(): Iterable<string>;
}

/** An event of changes already in memory (built by hand: tests, benchmarks). */
export function eventOfChanges(e: Omit<CdcEvent, 'changes' | 'changeCount' | 'changeJson'> & { readonly changes: readonly CdcChange[] }): CdcEvent {
  const { changes, ...rest } = e;
  return { ...rest, changes, changeCount: changes.length, changeJson: () => changes.map((c) => JSON.stringify(c)) };
}

/** An event whose changes are the logs of its parts, in order. */
class AssembledEvent implements CdcEvent {
  readonly id: string;
  readonly kind: CdcEvent['kind'];
  readonly commitTime: bigint;
  readonly shards: readonly string[];
  readonly #logs: readonly ChangeLog[];

  constructor(id: string, kind: CdcEvent['kind'], commitTime: bigint, shards: readonly string[], logs: readonly ChangeLog[]) {
    this.id = id;
    this.kind = kind;
    this.commitTime = commitTime;
    this.shards = shards;
    this.#logs = logs;
  }

  get changeCount(): number {
    return this.#logs.reduce((n, l) => n + l.count, 0);
  }

  get changes(): readonly CdcChange[] {
    return [...this.changeJson()].map((j) => JSON.parse(j) as CdcChange);
  }

  *changeJson(): Generator<string, void, undefined> {
    for (const l of this.#logs) yield* l.json();
  }
}

/** The decision table of DESIGN.md; its rows are read for assembly and never emitted. */
const OWN_SCHEMA = 'shardgate';
const DECISION_TABLE = 'tx_decision';

interface Relation {
  readonly table: string;
  readonly own: boolean;
  readonly columns: readonly RelationColumn[];
}

/** A change with the (sub)transaction that made it and the rows it touches. */
interface HeldChange {
  readonly xid: number | null;
  readonly change: CdcChange | null;
  /** What the change wrote, for the ordering rule. */
  readonly rows: readonly RowWrite[];
  /** The gid and participants of a commit decision row inserted here. */
  readonly decision: { readonly gid: string; readonly participants: readonly string[] } | null;
}

/** A transaction part being read: its changes and the rows it wrote (each may spill), its decision row. */
class PartBuffer {
  readonly log: ChangeLog;
  readonly rows: RowKeys;
  decision: (HeldChange['decision'] & { readonly xid: number | null }) | null = null;

  constructor(log: ChangeLog, rows: RowKeys) {
    this.log = log;
    this.rows = rows;
  }

  add(h: HeldChange): void {
    if (h.change !== null) this.log.append(h.xid ?? 0, JSON.stringify(h.change));
    if (h.decision !== null) this.decision = { ...h.decision, xid: h.xid };
    for (const w of h.rows) this.rows.add(h.xid ?? 0, w);
  }

  /** A subtransaction inside a streamed transaction rolled back: its changes go, and the rows it wrote (its locks went with it). */
  abortSubtransaction(xid: number): void {
    this.log.abortSubtransaction(xid);
    this.rows.abortSubtransaction(xid);
    if (this.decision?.xid === xid) this.decision = null;
  }

  /** Frees the changes and the row keys (rolled back, aborted, skipped, or replaced). */
  release(): void {
    this.log.release();
    this.rows.release();
  }
}

/** A part committed on one shard and not yet handed out, in that shard's commit order. */
interface Entry {
  readonly shard: string;
  readonly kind: 'local' | 'anchor' | 'branch';
  readonly gid: string | null;
  readonly log: ChangeLog;
  /** Released once the part leaves the queue: only the ordering rule reads them. */
  readonly rows: RowKeys;
  /** In the queue still (set false when it leaves). */
  queued: boolean;
  /**
   * Verdicts of `#mayGo` kept while the part waits, so that a part whose keys
   * are in a log does not read it again at every drain: an earlier part that
   * shares a row with it (binding while that one is queued), and earlier
   * parts compared through a log and found to share none (sets never change
   * once committed).
   */
  readonly verdicts: { blocker: Entry | null; readonly clear: Set<Entry> };
  /** Lowest position the slot may be confirmed at while this part is not acknowledged downstream. */
  readonly bound: Lsn;
  readonly end: Lsn;
  readonly commitTime: bigint;
  readonly commitLsn: Lsn;
}

interface Global {
  anchor: Entry | null;
  participants: readonly string[] | null;
  readonly branches: Map<string, Entry>;
}

interface ShardState {
  readonly name: string;
  readonly relations: Map<number, Relation>;
  /** The transaction being read; `skip` when its xid is already in the starting snapshot. */
  open: { readonly prepared: string | null; readonly part: PartBuffer; readonly skip: boolean } | null;
  readonly streams: Map<number, PartBuffer>;
  /** Streamed transactions already in the starting snapshot: read, never held. */
  readonly skippedStreams: Set<number>;
  streamXid: number | null;
  /** Prepared, not yet COMMIT PREPARED or ROLLBACK PREPARED: prepared gid → changes and prepare LSN. */
  readonly prepared: Map<string, { readonly part: PartBuffer; readonly prepareLsn: Lsn; readonly skip: boolean }>;
  readonly queue: Entry[];
  /** Emitted, not yet acknowledged: event id → bound and commit time. */
  readonly inFlight: Map<string, { readonly bound: Lsn; readonly commitTime: bigint }>;
  /** End of the last transaction fully read. */
  lastEnd: Lsn;
}

function columnsOf(rel: Relation, tuple: TupleData | null): Record<string, string | null> | null {
  if (tuple === null) return null;
  const out: Record<string, string | null> = {};
  tuple.forEach((c, i) => {
    const name = rel.columns[i]?.name ?? `column${i + 1}`;
    if (c.kind === 'null') out[name] = null;
    else if (c.kind === 'text') out[name] = c.value;
    else if (c.kind === 'binary') out[name] = c.value.toString('base64');
  });
  return out;
}

/**
 * What a row change of `rel` writes (see row-keys.ts): the row's replica-identity
 * key (`values` must hold every key column: the old key for a delete, the new
 * row completed with the old key's or old row's unchanged columns for an update);
 * for a table without any (REPLICA IDENTITY NOTHING, or DEFAULT without a primary
 * key) only an insert can arrive — PostgreSQL refuses UPDATE and DELETE on a
 * table published for them without one — and it writes a new row, which only the
 * table's lock relates to others. A row the stream does not identify (no key
 * column values: the server's rules never send that) counts as the whole table.
 */
function rowWrite(rel: Relation, op: 'insert' | 'update' | 'delete', values: Record<string, string | null> | null): RowWrite {
  const keys = rel.columns.filter((c) => c.isKey);
  if (keys.length === 0 && op === 'insert') return { kind: 'table', table: rel.table };
  if (values === null || keys.length === 0 || keys.some((k) => !(k.name in values))) return { kind: 'whole', table: rel.table };
  return { kind: 'row', table: rel.table, key: JSON.stringify(keys.map((k) => values[k.name])) };
}

/** Reads `{a,b}` (shard names: letters and digits, so never quoted). */
function parseTextArray(text: string | null | undefined): string[] {
  if (text === null || text === undefined) return [];
  const inner = text.replace(/^\{|\}$/g, '');
  return inner === '' ? [] : inner.split(',').map((s) => s.replace(/^"|"$/g, ''));
}

/**
 * Turns the decoded pgoutput streams of every shard into transactions as the
 * application committed them (see README.md "Assembly" for the rules and the
 * ordering guarantee). Pure: the caller feeds messages with `push`, hands
 * the returned events to a sink, and reports each acknowledged event with
 * `acknowledge`; `confirmable(shard)` is then the position safe to report as
 * flushed in that shard's standby status update.
 */
export class Assembler {
  readonly #shards = new Map<string, ShardState>();
  readonly #globals = new Map<string, Global>();
  /** Per shard, how many held global transactions miss a part only its stream can bring (`awaited`). */
  readonly #awaitedOn = new Map<string, number>();
  /** Event id → the shards whose in-flight bound it holds, and the logs of its parts (released once acknowledged). */
  readonly #eventShards = new Map<string, { readonly shards: readonly string[]; readonly logs: readonly ChangeLog[] }>();

  readonly #skip: (shard: string, xid: number) => boolean;
  readonly #store: SpillStore;
  readonly #rowKeysInMemory: number;

  /**
   * `shards`: every shard's name; `startAt`: where each stream starts (its
   * slot's confirmed position); `skip`: transactions (by shard and xid) whose
   * changes a starting copy already holds (an export's snapshot): read and
   * never emitted; `store`: where held changes and row keys go (spill.ts), by
   * default all in memory; `rowKeysInMemory`: row keys a part holds outside
   * the store (row-keys.ts; tests lower it).
   */
  constructor(
    shards: readonly string[],
    startAt: ReadonlyMap<string, Lsn> = new Map(),
    opts: { skip?: (shard: string, xid: number) => boolean; store?: SpillStore; rowKeysInMemory?: number } = {},
  ) {
    this.#skip = opts.skip ?? (() => false);
    this.#store = opts.store ?? SpillStore.inMemory();
    this.#rowKeysInMemory = opts.rowKeysInMemory ?? ROW_KEYS_IN_MEMORY;
    for (const s of shards) {
      this.#shards.set(s, {
        name: s,
        relations: new Map(),
        open: null,
        streams: new Map(),
        skippedStreams: new Set(),
        streamXid: null,
        prepared: new Map(),
        queue: [],
        inFlight: new Map(),
        lastEnd: startAt.get(s) ?? (0n as Lsn),
      });
    }
  }

  /** Global transactions with a part read and not yet emitted. */
  get held(): number {
    return this.#globals.size;
  }

  /**
   * Committed parts of `shard` waiting to be emitted (its queue): what grows
   * when another shard lags, since a part waits behind the global
   * transaction ahead of it on its shard. See README.md "Bound on waiting parts".
   */
  waitingParts(shard: string): number {
    return this.#state(shard).queue.length;
  }

  /**
   * True when a global transaction with a part read still misses a part that
   * only `shard`'s stream can bring: its anchor (anchor shard named in the gid)
   * or a participant's branch not yet committed there. Reading such a shard
   * is never paused: it is what unblocks the others.
   */
  awaited(shard: string): boolean {
    return (this.#awaitedOn.get(shard) ?? 0) > 0;
  }

  /** The shards whose streams alone can bring a part `g` still misses (see `awaited`). */
  #awaits(gid: string, g: Global): string[] {
    if (g.anchor === null) {
      const any = g.branches.values().next().value;
      if (any === undefined) return [];
      const anchor = parsePreparedGid(`${gid}_${any.shard}`)?.anchor ?? null;
      // An anchor that is none of our shards can come from no stream: every shard counts as awaited (never paused).
      return anchor !== null && this.#shards.has(anchor) ? [anchor] : [...this.#shards.keys()];
    }
    return (g.participants ?? []).filter((p) => !g.branches.has(p) && this.#shards.has(p));
  }

  /** Keeps `#awaitedOn` in step with `g`: its count is taken out before `change` and put back after (unless `g` was removed). */
  #changeGlobal(gid: string, g: Global, change: () => void): void {
    for (const s of this.#awaits(gid, g)) this.#awaitedOn.set(s, this.#awaitedOn.get(s)! - 1);
    change();
    if (this.#globals.get(gid) !== g) return;
    for (const s of this.#awaits(gid, g)) this.#awaitedOn.set(s, (this.#awaitedOn.get(s) ?? 0) + 1);
  }

  /** Feeds the next message of `shard`'s stream; returns the events that became complete, in emission order. */
  push(shard: string, m: PgoutputMessage): CdcEvent[] {
    const st = this.#state(shard);
    switch (m.kind) {
      case 'Relation':
        st.relations.set(m.relationOid, {
          table: `${m.namespace === '' ? 'pg_catalog' : m.namespace}.${m.name}`,
          own: m.namespace === OWN_SCHEMA,
          columns: m.columns,
        });
        return [];
      case 'Begin':
        this.#open(st, null, this.#skip(shard, m.xid));
        return [];
      case 'BeginPrepare':
        this.#open(st, m.gid, this.#skip(shard, m.xid));
        return [];
      case 'Insert':
      case 'Update':
      case 'Delete':
      case 'Truncate': {
        const skipped = st.streamXid === null ? st.open?.skip === true : st.skippedStreams.has(st.streamXid);
        if (!skipped) {
          const part = this.#partFor(st);
          for (const h of this.#held(st, m)) part.add(h);
        }
        return [];
      }
      case 'StreamStart':
        st.streamXid = m.xid;
        if (this.#skip(shard, m.xid)) st.skippedStreams.add(m.xid);
        if (!st.streams.has(m.xid)) st.streams.set(m.xid, this.#part());
        return [];
      case 'StreamStop':
        st.streamXid = null;
        return [];
      case 'StreamAbort': {
        if (m.subXid === m.xid) {
          st.streams.get(m.xid)?.release();
          st.streams.delete(m.xid);
          st.skippedStreams.delete(m.xid);
        } else {
          st.streams.get(m.xid)?.abortSubtransaction(m.subXid);
        }
        return [];
      }
      case 'Commit': {
        const part = st.open?.part ?? this.#part();
        const skip = st.open?.skip === true;
        st.open = null;
        return this.#committed(st, shard, part, m.commitLsn, m.endLsn, m.commitTime, null, skip);
      }
      case 'StreamCommit': {
        const part = st.streams.get(m.xid) ?? this.#part();
        const skip = st.skippedStreams.delete(m.xid);
        st.streams.delete(m.xid);
        return this.#committed(st, shard, part, m.commitLsn, m.endLsn, m.commitTime, null, skip);
      }
      case 'Prepare':
        this.#prepared(st, m.gid, st.open?.part ?? this.#part(), m.prepareLsn, st.open?.skip === true);
        st.open = null;
        if (m.endLsn > st.lastEnd) st.lastEnd = m.endLsn;
        return [];
      case 'StreamPrepare':
        this.#prepared(st, m.gid, st.streams.get(m.xid) ?? this.#part(), m.prepareLsn, st.skippedStreams.delete(m.xid));
        st.streams.delete(m.xid);
        if (m.endLsn > st.lastEnd) st.lastEnd = m.endLsn;
        return [];
      case 'CommitPrepared': {
        const p = st.prepared.get(m.gid);
        st.prepared.delete(m.gid);
        // The PREPARE read in this stream says; one that came before the stream started is asked by its xid.
        const skip = p !== undefined ? p.skip : this.#skip(shard, m.xid);
        return this.#committed(st, shard, p?.part ?? this.#part(), m.commitLsn, m.endLsn, m.commitTime, { gid: m.gid, bound: p?.prepareLsn ?? m.commitLsn }, skip);
      }
      case 'RollbackPrepared':
        // Rolled back: its changes (in memory or in a spill file) are dropped and never appear.
        st.prepared.get(m.gid)?.part.release();
        st.prepared.delete(m.gid);
        st.lastEnd = m.rollbackEndLsn > st.lastEnd ? m.rollbackEndLsn : st.lastEnd;
        return [];
      default:
        return [];
    }
  }

  /** Records that the sink acknowledged `event` (and, the caller guarantees, every event before it). */
  acknowledge(event: CdcEvent): void {
    const held = this.#eventShards.get(event.id);
    if (held === undefined) return;
    for (const s of held.shards) this.#state(s).inFlight.delete(event.id);
    // The sink has it: its changes are not needed again (a restart reads them from the slot).
    for (const l of held.logs) l.release();
    this.#eventShards.delete(event.id);
  }

  /**
   * The position `shard`'s slot may be confirmed at: below every part not yet
   * acknowledged downstream (a prepared branch counts from its PREPARE, whose
   * changes a restart would otherwise not send again), else the end of the
   * last transaction read.
   */
  confirmable(shard: string): Lsn {
    const st = this.#state(shard);
    let low = st.lastEnd;
    const lower = (l: Lsn): void => {
      if (l < low) low = l;
    };
    for (const e of st.queue) lower(e.bound);
    for (const p of st.prepared.values()) lower(p.prepareLsn);
    for (const b of st.inFlight.values()) lower(b.bound);
    return low;
  }

  /** Commit time of the oldest part of `shard` read and not yet acknowledged downstream; null when none (for lag). */
  oldestPending(shard: string): bigint | null {
    const st = this.#state(shard);
    let oldest: bigint | null = null;
    for (const t of [...st.queue.map((e) => e.commitTime), ...[...st.inFlight.values()].map((f) => f.commitTime)]) {
      if (oldest === null || t < oldest) oldest = t;
    }
    return oldest;
  }

  /** End of the last transaction read on `shard` (or the idle position a keepalive reported). */
  readTo(shard: string): Lsn {
    return this.#state(shard).lastEnd;
  }

  /**
   * After a restart, drops the global transactions that were emitted and
   * acknowledged before it but whose shards' slots were not all confirmed
   * past them (a crash between one standby status update and the next): the
   * part of a shard confirmed first is not sent again, so the others would
   * wait for it forever. See README.md "Restart". `before`: each shard's WAL
   * position read when the streams started; `readPast`: each shard's
   * position read after all of `before` were. The caller calls this once,
   * when every shard's stream has been read up to its `readPast`. Returns the
   * number dropped and the events the drop unblocked.
   */
  settleRestart(before: ReadonlyMap<string, Lsn>, readPast: ReadonlyMap<string, Lsn>): { dropped: number; events: CdcEvent[] } {
    let dropped = 0;
    for (const [gid, g] of [...this.#globals]) {
      const parts = [...(g.anchor === null ? [] : [g.anchor]), ...g.branches.values()];
      const old = parts.every((p) => p.commitLsn < (before.get(p.shard) ?? (0n as Lsn)));
      const readFar = (shard: string): boolean => this.#state(shard).lastEnd >= (readPast.get(shard) ?? (0n as Lsn));
      if (parts.length === 0 || !old) continue;
      // Missing anchor: it committed before its branches were committed, hence before `before` was read,
      // hence before `readPast`; read past that and not seen means it lies before the slot's start.
      const anchorShard = g.anchor?.shard ?? parsePreparedGid(`${gid}_${parts[0]!.shard}`)?.anchor ?? null;
      if (g.anchor === null && (anchorShard === null || !readFar(anchorShard))) continue;
      // Missing branch: prepared before the anchor committed; neither prepared nor committed in the stream
      // read past `readPast` means its shard's slot was confirmed past it, which happens only after the event.
      const missing = (g.participants ?? []).filter((p) => !g.branches.has(p));
      // Every part read: whole, only waiting behind earlier parts of its shards; never dropped.
      if (g.anchor !== null && missing.length === 0) continue;
      if (missing.some((p) => !readFar(p) || this.#state(p).prepared.has(`${gid}_${p}`))) continue;
      for (const p of parts) {
        const q = this.#state(p.shard).queue;
        q.splice(q.indexOf(p), 1);
        p.queued = false;
        p.rows.release();
        p.log.release();
      }
      this.#changeGlobal(gid, g, () => this.#globals.delete(gid));
      dropped++;
    }
    return { dropped, events: dropped === 0 ? [] : this.#drain() };
  }

  /** Advances an idle shard (a keepalive with nothing open): everything before `walEnd` has been read. */
  idle(shard: string, walEnd: Lsn): void {
    const st = this.#state(shard);
    if (st.open === null && st.streams.size === 0 && walEnd > st.lastEnd) st.lastEnd = walEnd;
  }

  #state(shard: string): ShardState {
    const st = this.#shards.get(shard);
    if (st === undefined) throw new Error(`unknown shard ${shard}`);
    return st;
  }

  #part(): PartBuffer {
    return new PartBuffer(this.#store.log(), new RowKeys(this.#store, this.#rowKeysInMemory));
  }

  /** A Begin (or Begin Prepare): a transaction opened but not ended (a stream that ended inside one) leaves nothing behind. */
  #open(st: ShardState, prepared: string | null, skip: boolean): void {
    st.open?.part.release();
    st.open = { prepared, part: this.#part(), skip };
  }

  #prepared(st: ShardState, gid: string, part: PartBuffer, prepareLsn: Lsn, skip: boolean): void {
    // The same gid prepared again (a stream restarted inside the attempt cannot, but be safe): the older copy goes.
    st.prepared.get(gid)?.part.release();
    st.prepared.set(gid, { part, prepareLsn, skip });
  }

  #partFor(st: ShardState): PartBuffer {
    if (st.streamXid !== null) return st.streams.get(st.streamXid)!;
    if (st.open === null) st.open = { prepared: null, part: this.#part(), skip: false };
    return st.open.part;
  }

  #held(st: ShardState, m: PgoutputMessage & { kind: 'Insert' | 'Update' | 'Delete' | 'Truncate' }): HeldChange[] {
    if (m.kind === 'Truncate') {
      return m.relationOids.map((oid) => {
        const rel = st.relations.get(oid);
        const table = rel?.table ?? `oid ${oid}`;
        const change: CdcChange | null = rel?.own === true ? null : { table, op: 'truncate', old: null, new: null };
        return { xid: m.xid, change, rows: [{ kind: 'whole', table }], decision: null };
      });
    }
    const rel = st.relations.get(m.relationOid);
    if (rel === undefined) throw new Error(`change for relation ${m.relationOid} before its Relation message`);
    const neu = m.kind === 'Delete' ? null : columnsOf(rel, m.newTuple);
    const old = m.kind === 'Insert' ? null : columnsOf(rel, m.key ?? m.old);
    const op = m.kind === 'Insert' ? 'insert' : m.kind === 'Update' ? 'update' : 'delete';
    // An update's new row lacks its unchanged TOASTed columns ('u'): the old key or old row sent with it has them.
    const written = op === 'delete' ? [old] : op === 'insert' ? [neu] : [old === null ? neu : { ...old, ...neu }, old].filter((v) => v !== null);
    const rows = rel.own ? [] : [...new Map(written.map((v) => rowWrite(rel, op, v)).map((w) => [JSON.stringify(w), w])).values()];
    let decision: HeldChange['decision'] = null;
    if (rel.own && rel.table === `${OWN_SCHEMA}.${DECISION_TABLE}` && m.kind === 'Insert' && neu?.outcome === 'commit' && typeof neu.gid === 'string') {
      decision = { gid: neu.gid, participants: parseTextArray(neu.participants) };
    }
    return [{ xid: m.xid, change: rel.own ? null : { table: rel.table, op, old, new: neu }, rows, decision }];
  }

  #committed(
    st: ShardState,
    shard: string,
    part: PartBuffer,
    commitLsn: Lsn,
    end: Lsn,
    commitTime: bigint,
    prepared: { gid: string; bound: Lsn } | null,
    skip: boolean,
  ): CdcEvent[] {
    if (end > st.lastEnd) st.lastEnd = end;
    if (skip) {
      part.release();
      const empty = this.#part();
      st.queue.push({ shard, log: empty.log, rows: empty.rows, queued: true, verdicts: { blocker: null, clear: new Set() }, end, commitTime, commitLsn, kind: 'local', gid: null, bound: prepared?.bound ?? commitLsn });
      return this.#drain();
    }
    const decision = part.decision;
    const ours = prepared === null ? null : parsePreparedGid(prepared.gid);
    const base = { shard, log: part.log, rows: part.rows, queued: true, verdicts: { blocker: null, clear: new Set<Entry>() }, end, commitTime, commitLsn };
    if (ours !== null && ours.shard === shard) {
      st.queue.push({ ...base, kind: 'branch', gid: ours.gid, bound: prepared!.bound });
      const g = this.#global(ours.gid);
      this.#changeGlobal(ours.gid, g, () => g.branches.set(shard, st.queue.at(-1)!));
    } else if (decision !== null) {
      st.queue.push({ ...base, kind: 'anchor', gid: decision.gid, bound: commitLsn });
      const g = this.#global(decision.gid);
      this.#changeGlobal(decision.gid, g, () => {
        g.anchor = st.queue.at(-1)!;
        g.participants = decision.participants;
      });
    } else {
      st.queue.push({ ...base, kind: 'local', gid: null, bound: prepared?.bound ?? commitLsn });
    }
    return this.#drain();
  }

  #global(gid: string): Global {
    let g = this.#globals.get(gid);
    if (g === undefined) {
      g = { anchor: null, participants: null, branches: new Map() };
      this.#globals.set(gid, g);
    }
    return g;
  }

  /** True when no part before `e` on its shard wrote a row `e` wrote (row-keys.ts: exact rows, whole tables only for TRUNCATE). */
  #mayGo(e: Entry): boolean {
    if (e.verdicts.blocker?.queued === true) return false;
    const q = this.#state(e.shard).queue;
    for (const before of q) {
      if (before === e) return true;
      if (e.verdicts.clear.has(before)) continue;
      if (e.rows.conflicts(before.rows)) {
        e.verdicts.blocker = before;
        return false;
      }
      // Compared through a log (memory or file): kept, so that a waiting part does not read it again.
      if (e.rows.inLog || before.rows.inLog) e.verdicts.clear.add(before);
    }
    return false;
  }

  #drain(): CdcEvent[] {
    const out: CdcEvent[] = [];
    for (let progress = true; progress; ) {
      progress = false;
      for (const [shard, st] of this.#shards) {
        const head = st.queue[0];
        if (head === undefined) continue;
        if (head.kind === 'local') {
          st.queue.shift();
          head.queued = false;
          head.rows.release();
          if (head.log.count > 0) out.push(this.#emit(`${shard}:${formatLsn(head.commitLsn)}`, 'local', [head]));
          else head.log.release();
          progress = true;
          continue;
        }
        const g = this.#globals.get(head.gid!)!;
        if (g.anchor === null || g.participants === null || !g.participants.every((p) => g.branches.has(p))) continue;
        const parts = [g.anchor, ...g.participants.map((p) => g.branches.get(p)!)];
        if (!parts.every((p) => this.#mayGo(p))) continue;
        for (const p of parts) {
          const q = this.#state(p.shard).queue;
          q.splice(q.indexOf(p), 1);
          p.queued = false;
          p.rows.release();
        }
        this.#changeGlobal(head.gid!, g, () => this.#globals.delete(head.gid!));
        if (parts.some((p) => p.log.count > 0)) out.push(this.#emit(head.gid!, 'global', parts));
        else for (const p of parts) p.log.release();
        progress = true;
      }
    }
    return out;
  }

  #emit(id: string, kind: CdcEvent['kind'], parts: readonly Entry[]): CdcEvent {
    const shards = parts.map((p) => p.shard);
    for (const p of parts) this.#state(p.shard).inFlight.set(id, { bound: p.bound, commitTime: p.commitTime });
    const logs = parts.map((p) => p.log);
    this.#eventShards.set(id, { shards, logs });
    return new AssembledEvent(id, kind, parts[0]!.commitTime, shards, logs);
  }
}
