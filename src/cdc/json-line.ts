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

/** The event as a JSON value; each change `{"table","op","old","new"}` with values as PostgreSQL's text. */
export function eventToJson(event: CdcEvent): CdcEventJson {
  return {
    id: event.id,
    kind: event.kind,
    commitTime: pgTimestampToDate(event.commitTime as PgTimestamp).toISOString(),
    shards: event.shards,
    changes: event.changes,
  };
}

/** One event as one line of JSON (no trailing newline), the stdout sink's format. */
export function eventToJsonLine(event: CdcEvent): string {
  return JSON.stringify(eventToJson(event));
}
