import { describe, expect, it } from 'vitest';
import { BufferedCopySink, COPY_CHUNK_BYTES } from '../../../src/backend/buffered-copy-sink.js';
import { shardName } from '../../../src/config/names.js';
import type { ErrorFields } from '../../../src/errors/pg-error.js';
import { PgError } from '../../../src/errors/pg-error.js';
import type { FrontendMessage } from '../../../src/protocol/index.js';
import type { TxStatus } from '../../../src/protocol/fields.js';

/** Records each request; COPY requests report one row per newline, or fail when the data holds "bad". */
function harness(initial: TxStatus = 'I') {
  const requests: string[] = [];
  let status: TxStatus = initial;
  let done = 0;
  const roundTrip = async (messages: readonly FrontendMessage[]): Promise<{ tag: string; error: ErrorFields | null }> => {
    const q = messages[0];
    if (q?.type !== 'Query') throw new Error('expected Query first');
    const data = messages.find((m) => m.type === 'CopyData');
    if (data?.type === 'CopyData') {
      requests.push(`COPY ${data.data.length}B`);
      if (data.data.includes('bad')) {
        if (status === 'T') status = 'E';
        return { tag: '', error: { severity: 'ERROR', code: '22P02', message: 'bad' } };
      }
      return { tag: `COPY ${data.data.toString().split('\n').length - 1}`, error: null };
    }
    requests.push(q.sql);
    if (q.sql === 'BEGIN') status = 'T';
    if (q.sql === 'COMMIT' || q.sql === 'ROLLBACK') status = 'I';
    return { tag: q.sql, error: null };
  };
  const sink = (sql = 'COPY t FROM STDIN') =>
    new BufferedCopySink({ sql, shard: shardName('e0'), roundTrip, txStatus: () => status, onDone: () => done++ });
  return { requests, sink, done: () => done, status: () => status };
}

const rows = (n: number, width: number): Buffer => Buffer.from(`${'x'.repeat(width - 1)}\n`.repeat(n));

describe('BufferedCopySink', () => {
  it('sends small copies as one COPY request at end', async () => {
    const h = harness();
    const s = h.sink();
    await s.write(Buffer.from('1\ta\n2\tb\n'));
    await s.write(Buffer.from('3\tc\n'));
    expect(h.requests).toEqual([]);
    expect(await s.end()).toBe('COPY 3');
    expect(h.requests).toEqual(['COPY 12B']);
    expect(h.done()).toBe(1);
  });

  it('cuts large text copies into chunks inside BEGIN … COMMIT', async () => {
    const h = harness();
    const s = h.sink();
    const write = rows(1024, 1024); // 1 MiB
    const writes = Math.ceil((COPY_CHUNK_BYTES * 2) / write.length) + 1;
    for (let i = 0; i < writes; i++) await s.write(write);
    expect(await s.end()).toBe(`COPY ${writes * 1024}`);
    expect(h.requests[0]).toBe('BEGIN');
    expect(h.requests.at(-1)).toBe('COMMIT');
    expect(h.requests.filter((r) => r.startsWith('COPY')).length).toBeGreaterThanOrEqual(3);
    expect(h.status()).toBe('I');
  });

  it('does not wrap chunks when a transaction is already open', async () => {
    const h = harness('T');
    const s = h.sink();
    const write = rows(1024, 1024);
    for (let i = 0; i < Math.ceil(COPY_CHUNK_BYTES / write.length) + 1; i++) await s.write(write);
    await s.end();
    expect(h.requests.every((r) => r.startsWith('COPY'))).toBe(true);
  });

  it('rolls back chunks already sent when a later one fails', async () => {
    const h = harness();
    const s = h.sink();
    const write = rows(1024, 1024);
    for (let i = 0; i < Math.ceil(COPY_CHUNK_BYTES / write.length); i++) await s.write(write);
    await s.write(Buffer.from('bad\n'));
    const err = await s.end().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err instanceof PgError && err.code).toBe('22P02');
    expect(h.requests.at(-1)).toBe('ROLLBACK');
    expect(h.status()).toBe('I');
    expect(h.done()).toBe(1);
  });

  it('keeps binary and HEADER copies in one request', async () => {
    for (const [sql, first] of [
      ['COPY t FROM STDIN (FORMAT binary)', Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)])],
      ['COPY t FROM STDIN (FORMAT csv, HEADER true)', Buffer.from('a,b\n')],
    ] as const) {
      const h = harness();
      const s = h.sink(sql);
      await s.write(first);
      const write = rows(1024, 1024);
      for (let i = 0; i < Math.ceil(COPY_CHUNK_BYTES / write.length) + 1; i++) await s.write(write);
      await s.end();
      expect(h.requests).toHaveLength(1);
    }
  });

  it('runs nothing on fail before any chunk was sent, and refuses use afterwards', async () => {
    const h = harness();
    const s = h.sink();
    await s.write(Buffer.from('1\n'));
    await s.fail('no');
    expect(h.requests).toEqual([]);
    expect(h.done()).toBe(1);
    await expect(s.write(Buffer.from('2\n'))).rejects.toBeInstanceOf(PgError);
  });
});
