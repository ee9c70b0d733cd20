import type { CdcEvent } from './assembler.js';
import { pgTimestampToDate, type PgTimestamp } from './lsn.js';

/**
 * One event as one line of JSON (no trailing newline), the stdout sink's
 * format: `{"id","kind","commitTime" (ISO 8601, UTC, milliseconds),"shards","changes"}`,
 * each change `{"table","op","old","new"}` with values as PostgreSQL's text.
 */
export function eventToJsonLine(event: CdcEvent): string {
  return JSON.stringify({
    id: event.id,
    kind: event.kind,
    commitTime: pgTimestampToDate(event.commitTime as PgTimestamp).toISOString(),
    shards: event.shards,
    changes: event.changes,
  });
}
