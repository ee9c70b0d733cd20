import { closeSync, mkdirSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Spill file record layout (all integers big-endian, as on the wire):
 *
 *   Int32  length of the change's JSON text in bytes (UTF-8)
 *   Int32  xid of the (sub)transaction that made the change, 0 when the server sent none
 *   Byte[] the change's JSON text
 *
 * Records are appended in WAL order; a file holds one transaction part and is
 * read from the start once, when its event goes to the sink. A log of row keys
 * (row-keys.ts) has the same layout, each record's text a row key instead of a
 * change, and is read each time its part is compared with another.
 */
const HEADER = 8;
/** Appends to a spilled log are gathered up to this size before one write. */
const WRITE_CHUNK = 64 * 1024;
/** A spilled log is read back this many bytes at a time. */
const READ_CHUNK = 64 * 1024;
/** What one change held in memory costs besides its JSON text (the record object, the array slot, the string header). */
const RECORD_OVERHEAD = 64;

/** What a log holds: a transaction part's changes, or the row keys it wrote. */
export type SpillKind = 'part' | 'keys';

/** One change as held: the JSON text sinks write, and the (sub)transaction it belongs to. */
interface HeldRecord {
  readonly xid: number;
  readonly json: string;
}

/**
 * Where the changes of transactions not yet acknowledged downstream are
 * held: in memory while their total stays under `memoryLimit` bytes, else
 * the largest logs go to files in `dir` (one file per log, i.e. per
 * transaction part) until the total is under half the limit. Nothing is made
 * durable: a file only stands for WAL the slot still holds (the slot is never
 * confirmed past a part not acknowledged), so after a crash the files are
 * worthless and `open` removes them.
 */
export class SpillStore {
  readonly #dir: string | null;
  readonly #limit: number;
  readonly #logs = new Set<ChangeLog>();
  #inMemory = 0;
  #files = 0;
  #next = 0;
  #spilledTotal = 0;

  /** A store that never spills (`dir` null), or spills to `dir` above `memoryLimit` bytes. */
  private constructor(dir: string | null, memoryLimit: number) {
    this.#dir = dir;
    this.#limit = memoryLimit;
  }

  /** Holds everything in memory: for callers that bound nothing (tests of the assembly rules). */
  static inMemory(): SpillStore {
    return new SpillStore(null, Number.POSITIVE_INFINITY);
  }

  /**
   * A store spilling to `dir` above `memoryLimit` bytes; `dir` is created,
   * and emptied of what an earlier process (or attempt) left there.
   */
  static open(dir: string, memoryLimit: number): SpillStore {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    return new SpillStore(dir, memoryLimit);
  }

  /**
   * A new, empty log: of a part's changes (`part`, files `part-<n>.spill`) or
   * of the row keys it wrote (`keys`, files `keys-<n>.spill`).
   */
  log(kind: SpillKind = 'part'): ChangeLog {
    const log = new ChangeLog(this, kind);
    this.#logs.add(log);
    return log;
  }

  /** Bytes of changes held in memory now. */
  get memoryBytes(): number {
    return this.#inMemory;
  }

  /** Spill files that exist now. */
  get files(): number {
    return this.#files;
  }

  /** Logs moved to files since the store opened. */
  get spilledTotal(): number {
    return this.#spilledTotal;
  }

  /** Removes every file and forgets every log (the attempt that used them ended). */
  close(): void {
    for (const log of [...this.#logs]) log.release();
  }

  /** @internal ChangeLog's accounting. */
  grew(bytes: number): void {
    this.#inMemory += bytes;
    if (this.#inMemory > this.#limit) this.#spill();
  }

  /** @internal */
  released(log: ChangeLog, memoryBytes: number, hadFile: boolean): void {
    this.#logs.delete(log);
    this.#inMemory -= memoryBytes;
    if (hadFile) this.#files--;
  }

  /** @internal A path for a new spill file, counted. */
  newFile(memoryBytes: number, kind: SpillKind): string {
    this.#inMemory -= memoryBytes;
    this.#files++;
    this.#spilledTotal++;
    return join(this.#dir!, `${kind}-${++this.#next}.spill`);
  }

  #spill(): void {
    if (this.#dir === null) return;
    // Largest first: fewest files for the most memory; a log being read stays where it is.
    const candidates = [...this.#logs].filter((l) => l.spillable).sort((a, b) => b.memoryBytes - a.memoryBytes);
    for (const log of candidates) {
      if (this.#inMemory <= this.#limit / 2) break;
      log.spill();
    }
  }
}

/**
 * The changes of one transaction part, in WAL order: appended while the
 * part is read, then read once, in the same order, when its event goes to
 * the sink. Held in memory until its store moves it to a file; appends after
 * that go to the file.
 */
export class ChangeLog {
  readonly #store: SpillStore;
  readonly #kind: SpillKind;
  #records: HeldRecord[] = [];
  #memoryBytes = 0;
  #count = 0;
  #path: string | null = null;
  #fd: number | null = null;
  /** Records appended to a spilled log and not yet written: one buffer is built per write, not two per record. */
  #pending: HeldRecord[] = [];
  #pendingBytes = 0;
  #fileBytes = 0;
  #readers = 0;
  #released = false;
  /** Subtransactions rolled back (Stream Abort of a subxact): their records are skipped when read. */
  readonly #aborted = new Set<number>();
  /** Changes appended per xid, so rolling back a subtransaction of a spilled log keeps `count` exact. */
  readonly #perXid = new Map<number, number>();

  /** @internal Made by `SpillStore.log`. */
  constructor(store: SpillStore, kind: SpillKind) {
    this.#store = store;
    this.#kind = kind;
  }

  /** Changes appended and not rolled back with their subtransaction. */
  get count(): number {
    return this.#count;
  }

  /** Bytes this log holds in memory (counted against the store's limit). */
  get memoryBytes(): number {
    return this.#memoryBytes;
  }

  /** True once the log's records are in a file. */
  get spilled(): boolean {
    return this.#path !== null;
  }

  /** @internal May the store move it to a file now. */
  get spillable(): boolean {
    return this.#path === null && this.#readers === 0 && !this.#released && this.#records.length > 0;
  }

  /** Appends one change (its JSON text) made by `xid` (0 when unknown). */
  append(xid: number, json: string): void {
    if (this.#released) throw new Error('append to a released change log');
    this.#count++;
    this.#perXid.set(xid, (this.#perXid.get(xid) ?? 0) + 1);
    if (this.#path === null) {
      this.#records.push({ xid, json });
      const bytes = json.length + RECORD_OVERHEAD;
      this.#memoryBytes += bytes;
      this.#store.grew(bytes);
      return;
    }
    this.#write(xid, json);
  }

  /** Drops the changes of subtransaction `xid` (rolled back inside a streamed transaction). */
  abortSubtransaction(xid: number): void {
    this.#count -= this.#perXid.get(xid) ?? 0;
    this.#perXid.delete(xid);
    if (this.#path === null) {
      const kept = this.#records.filter((r) => r.xid !== xid);
      const freed = this.#records.filter((r) => r.xid === xid).reduce((n, r) => n + r.json.length + RECORD_OVERHEAD, 0);
      this.#records = kept;
      this.#memoryBytes -= freed;
      this.#store.grew(-freed);
    } else {
      this.#aborted.add(xid);
    }
  }

  /** Each change's JSON text, in the order appended; a spilled log is read back a chunk at a time. */
  *json(): Generator<string, void, undefined> {
    this.#readers++;
    try {
      if (this.#path === null) {
        for (const r of this.#records) yield r.json;
        return;
      }
      this.#flush();
      yield* this.#readFile(this.#path);
    } finally {
      this.#readers--;
    }
  }

  /** Frees the memory and removes the file; the log is not used again. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    if (this.#fd !== null) closeSync(this.#fd);
    if (this.#path !== null) rmSync(this.#path, { force: true });
    this.#store.released(this, this.#memoryBytes, this.#path !== null);
    this.#records = [];
    this.#pending = [];
    this.#memoryBytes = 0;
  }

  /** @internal Moves the records to a new file (the store decided). */
  spill(): void {
    const records = this.#records;
    this.#path = this.#store.newFile(this.#memoryBytes, this.#kind);
    this.#memoryBytes = 0;
    this.#records = [];
    this.#fd = openSync(this.#path, 'wx');
    for (const r of records) this.#write(r.xid, r.json);
    this.#flush();
  }

  #write(xid: number, json: string): void {
    this.#pending.push({ xid, json });
    // UTF-16 length: at most the UTF-8 length for text of one-byte characters, a third of it at worst.
    this.#pendingBytes += HEADER + json.length;
    if (this.#pendingBytes >= WRITE_CHUNK) this.#flush();
  }

  #flush(): void {
    if (this.#pendingBytes === 0 || this.#fd === null) return;
    let size = 0;
    for (const r of this.#pending) size += HEADER + Buffer.byteLength(r.json, 'utf8');
    const chunk = Buffer.allocUnsafe(size);
    let at = 0;
    for (const r of this.#pending) {
      const length = chunk.write(r.json, at + HEADER, 'utf8');
      chunk.writeInt32BE(length, at);
      chunk.writeUInt32BE(r.xid >>> 0, at + 4);
      at += HEADER + length;
    }
    // No fsync: the slot still holds this WAL, so a crash only loses a copy the server sends again.
    for (let done = 0; done < chunk.length; ) done += writeSync(this.#fd, chunk, done, chunk.length - done, this.#fileBytes + done);
    this.#fileBytes += chunk.length;
    this.#pending = [];
    this.#pendingBytes = 0;
  }

  *#readFile(path: string): Generator<string, void, undefined> {
    const fd = openSync(path, 'r');
    try {
      let buf = Buffer.alloc(0);
      let position = 0;
      for (;;) {
        // Enough for the next header, then for its whole record (one larger than a chunk is read whole).
        const need = buf.length < HEADER ? HEADER : HEADER + buf.readInt32BE(0);
        if (buf.length < need) {
          const chunk = Buffer.allocUnsafe(Math.max(READ_CHUNK, need - buf.length));
          const n = readSync(fd, chunk, 0, chunk.length, position);
          if (n === 0) {
            if (buf.length > 0) throw new Error(`spill file ${path} ends inside a record`);
            return;
          }
          position += n;
          buf = buf.length === 0 ? chunk.subarray(0, n) : Buffer.concat([buf, chunk.subarray(0, n)]);
          continue;
        }
        const xid = buf.readUInt32BE(4);
        const json = buf.toString('utf8', HEADER, need);
        buf = buf.subarray(need);
        if (!this.#aborted.has(xid)) yield json;
      }
    } finally {
      closeSync(fd);
    }
  }
}
