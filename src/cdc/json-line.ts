import type { CdcEvent } from './assembler.js';
import { pgTimestampToDate, type PgTimestamp } from './lsn.js';

/** An event as sinks publish it: `{id, kind, commitTime (ISO 8601, UTC, milliseconds), shards, changes}`. */
export interface CdcEventJson {
  readonly id: string;
  readonly kind: CdcEvent['kind'];
  readonly commitTime: string;
  readonly shards: readonly string[];
  readonly changes: CdcEvent['changes'];
}

/** The event's fields as published, without its changes (which are never read here). */
function jsonHead(event: CdcEvent): Omit<CdcEventJson, 'changes'> {
  return {
    id: event.id,
    kind: event.kind,
    commitTime: pgTimestampToDate(event.commitTime as PgTimestamp).toISOString(),
    shards: event.shards,
  };
}

/** The event as a JSON value; each change `{"table","op","old","new"}` with values as PostgreSQL's text. */
export function eventToJson(event: CdcEvent): CdcEventJson {
  return { ...jsonHead(event), changes: event.changes };
}

/**
 * The JSON text of `eventToJson(event)` in pieces — the head up to the
 * changes' `[`, each change, the commas, the closing `]}` — so a sink can
 * write a transaction of any size without holding it whole: the changes of
 * a spilled event are read from disk as the pieces are taken. The pieces
 * joined are exactly `JSON.stringify(eventToJson(event))` (JSON.stringify
 * without indentation composes).
 */
export function* eventJsonPieces(event: CdcEvent): Generator<string, void, undefined> {
  const head = JSON.stringify({ ...jsonHead(event), changes: [] } satisfies CdcEventJson);
  // `head` ends in `[]}`: open the array, then the changes, then close it.
  yield head.slice(0, -2);
  let first = true;
  for (const c of event.changeJson()) {
    yield first ? c : `,${c}`;
    first = false;
  }
  yield ']}';
}

/** One event as one line of JSON (no trailing newline), the stdout sink's format. */
export function eventToJsonLine(event: CdcEvent): string {
  return [...eventJsonPieces(event)].join('');
}
