import type { EngineSession } from '../engine/session-api.js';
import { singleStatement } from '../sql/single-statement.js';
import { splitStatements, type SplitStatement } from '../sql/split-statements.js';
import { shiftPosition, toClientError } from './error-mapping.js';
import { ClientGoneError } from './message-source.js';
import type { ServerLog } from './server-log.js';
import { StatementRun } from './statement-run.js';
import type { RunIO } from './statement-run.js';

/**
 * Runs a simple Query (F): each statement of the string in turn, as one
 * implicit transaction when there are several (PostgreSQL's rule). The first
 * error is sent and the remaining statements are not run; positions in errors
 * point into the whole string. A FATAL error is thrown for the connection to
 * end; the caller sends ReadyForQuery otherwise.
 */
export async function runSimpleQuery(io: RunIO, session: EngineSession, sql: string, log: ServerLog): Promise<void> {
  const out = io.out;
  if (sql.trim() === '') {
    out.send({ type: 'EmptyQueryResponse' });
    return;
  }
  let statements: readonly SplitStatement[];
  const single = singleStatement(sql);
  try {
    statements = single !== null ? [single] : splitStatements(sql).filter((s) => s.sql.trim() !== '');
  } catch (err) {
    const error = toClientError(err, log);
    if (error.fatal) throw error;
    out.send({ type: 'ErrorResponse', fields: error.fields });
    return;
  }
  if (statements.length === 0) {
    out.send({ type: 'EmptyQueryResponse' });
    return;
  }
  const implicit = statements.length > 1;
  if (implicit) session.beginImplicit();
  let ok = true;
  /** What ends the connection (client gone, FATAL), rethrown once the implicit transaction is closed. */
  let fatal: unknown = null;
  for (const statement of statements) {
    try {
      await new StatementRun(io, session.execute({ sql: statement.sql, relay: true }), true).run(0);
    } catch (err) {
      ok = false;
      const error = err instanceof ClientGoneError ? null : shiftPosition(toClientError(err, log), statement.offset);
      if (error === null || error.fatal) fatal = error ?? err;
      else out.send({ type: 'ErrorResponse', fields: error.fields });
      break;
    }
  }
  if (implicit) {
    try {
      await session.endImplicit(ok);
    } catch (err) {
      // A failed commit of the implicit transaction is this query's error; after a
      // statement error the client has its error already.
      const error = toClientError(err, log);
      if (error.fatal) fatal ??= error;
      else if (ok) out.send({ type: 'ErrorResponse', fields: error.fields });
    }
  }
  if (fatal !== null) throw fatal;
}
