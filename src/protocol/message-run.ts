import { sgError } from '../errors/catalogue.js';

/** Type byte + Int32 length word in front of every message after startup. */
const HEADER_SIZE = 5;

/**
 * Cuts runs of framed messages (each buffer whole messages, headers
 * included, as MessageReader.nextRun returns them) after the first `count`
 * messages: `head` holds those, `tail` the rest, both as views of the same
 * bytes in the same order. Reads only the length words. Throws 08P01 when
 * the runs hold fewer than `count` messages or a run ends inside one.
 */
export function splitMessages(runs: readonly Buffer[], count: number): { head: Buffer[]; tail: Buffer[] } {
  const head: Buffer[] = [];
  let left = count;
  for (let i = 0; i < runs.length; i++) {
    if (left === 0) return { head, tail: runs.slice(i) };
    const run = runs[i]!;
    let at = 0;
    while (left > 0 && at < run.length) {
      if (at + HEADER_SIZE > run.length) break;
      at += 1 + run.readInt32BE(at + 1);
      left--;
    }
    if (at > run.length || (at < run.length && left > 0)) throw sgError('protocolViolation', { reason: 'a relayed run of messages ends inside a message' });
    if (at === run.length) {
      head.push(run);
      continue;
    }
    head.push(run.subarray(0, at));
    return { head, tail: [run.subarray(at), ...runs.slice(i + 1)] };
  }
  if (left > 0) throw sgError('protocolViolation', { reason: `relayed runs hold ${count - left} messages, not ${count}` });
  return { head, tail: [] };
}
