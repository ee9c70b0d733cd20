import type { CopyInSink } from '../engine/shard-cursor.js';
import { sgError } from '../errors/index.js';
import { decodeFrontend } from '../protocol/index.js';
import type { MessageSource } from './message-source.js';
import { ClientGoneError } from './message-source.js';

/** CopyData payloads are gathered up to about this size before one `sink.write`. */
const BATCH_BYTES = 256 * 1024;

/**
 * Feeds the client's COPY FROM STDIN stream into `sink` until CopyDone
 * (`sink.end()`) or CopyFail (`sink.fail()`; the statement then raises the
 * shard's error). Flush and Sync are ignored in copy-in mode, as PostgreSQL
 * does. Consecutive CopyData messages already received are passed on as one
 * write, so a client sending one message per line costs one write per batch.
 * Any other message aborts the copy with 08P01; a client that disconnects
 * aborts it too.
 */
export async function relayCopyIn(source: MessageSource, sink: CopyInSink): Promise<void> {
  let batch: Buffer[] = [];
  let batchBytes = 0;
  const writeBatch = async (): Promise<void> => {
    if (batchBytes === 0) return;
    const data = batch.length === 1 ? batch[0]! : Buffer.concat(batch, batchBytes);
    batch = [];
    batchBytes = 0;
    await sink.write(data);
  };
  for (;;) {
    const raw = source.tryNext() ?? (await writeBatch().then(() => source.next()));
    if (raw === null) {
      await sink.fail('client connection lost during COPY').catch(() => undefined);
      throw new ClientGoneError();
    }
    switch (raw.code) {
      case 'd': {
        const msg = decodeFrontend(raw);
        if (msg.type !== 'CopyData') break;
        // The body may alias the socket's chunk; sockets never reuse chunks, so keeping it is safe.
        batch.push(msg.data);
        batchBytes += msg.data.length;
        if (batchBytes >= BATCH_BYTES) await writeBatch();
        break;
      }
      case 'c':
        await writeBatch();
        await sink.end();
        return;
      case 'f': {
        const msg = decodeFrontend(raw);
        batch = [];
        batchBytes = 0;
        await sink.fail(msg.type === 'CopyFail' ? msg.message : 'COPY failed');
        return;
      }
      case 'H':
      case 'S':
        break;
      default:
        await sink.fail('unexpected message during COPY').catch(() => undefined);
        throw sgError('unexpectedCopyMessage', { code: raw.code.charCodeAt(0).toString(16).padStart(2, '0') });
    }
  }
}
