import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { eventOfChanges, type CdcEvent } from '../../../src/cdc/assembler.js';
import { jsonLinesSink } from '../../../src/cdc/cdc-sink.js';
import { eventToJsonLine } from '../../../src/cdc/json-line.js';

/** A pipe whose reader takes one chunk each time the test says so. */
class HeldPipe extends Writable {
  readonly chunks: string[] = [];
  readonly #waiting: (() => void)[] = [];
  constructor() {
    super({ highWaterMark: 1, decodeStrings: false });
  }
  override _write(chunk: string, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.chunks.push(chunk);
    this.#waiting.push(() => done());
  }
  /** Lets the reader take the oldest chunk waiting; false when none waits. */
  take(): boolean {
    const next = this.#waiting.shift();
    next?.();
    return next !== undefined;
  }
}

/** An event whose changes are produced on demand, counting how many were asked for. */
function countedEvent(n: number): { event: CdcEvent; read: () => number } {
  const base = eventOfChanges({ id: 's0:0/1', kind: 'local', commitTime: 0n, shards: ['s0'], changes: [] });
  let read = 0;
  const event: CdcEvent = {
    ...base,
    changeCount: n,
    get changes() {
      return [...this.changeJson()].map((j) => JSON.parse(j) as CdcEvent['changes'][number]);
    },
    *changeJson() {
      for (let i = 0; i < n; i++) {
        read++;
        yield JSON.stringify({ table: 'public.t', op: 'insert', old: null, new: { id: String(i), pad: 'x'.repeat(200) } });
      }
    },
  };
  return { event, read: () => read };
}

describe('jsonLinesSink', () => {
  // 64 kB chunks of ~250-byte changes: about 260 changes per chunk.
  it('writes a large transaction as one line in chunks, reading its changes only as fast as the pipe takes them', async () => {
    const pipe = new HeldPipe();
    const sink = jsonLinesSink(pipe);
    const { event, read } = countedEvent(10_000);
    let done = false;
    const sent = sink.send([event]).then(() => (done = true));
    // Held: one chunk written, and only the changes of about one 64 kB chunk read from the event.
    await new Promise((r) => setImmediate(r));
    expect(pipe.chunks).toHaveLength(1);
    expect(read()).toBeLessThan(400);
    expect(done).toBe(false);
    while (!done) {
      pipe.take();
      await new Promise((r) => setImmediate(r));
      // Never more than one chunk's changes read ahead of what the pipe took.
      expect(read()).toBeLessThanOrEqual((pipe.chunks.length + 1) * 300);
    }
    await sent;
    expect(read()).toBe(10_000);
    expect(pipe.chunks.length).toBeGreaterThan(10);
    expect(pipe.chunks.join('')).toBe(`${eventToJsonLine(event)}\n`);
  });
});
