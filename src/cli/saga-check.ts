import pg from 'pg';
import { ConfigError } from '../config/config-error.js';
import type { ShardGateConfig } from '../config/types.js';
import { redactUrl } from '../observe/logger.js';
import { checkSagaLogs } from '../saga/saga-check.js';
import type { CliIo } from './cli-io.js';

/**
 * `shardgate saga check`: checks every invariant of the saga, outbox and
 * barrier logs in `saga.database` (src/saga/README.md "Integrity check") and
 * prints one line per broken row, `<invariant> <table> <key>: <detail>`, on
 * stdout. Exit status 0 when the logs are consistent, 1 when anything was
 * found or the database could not be read, 2 when no saga log is configured.
 */
export async function sagaCheck(config: ShardGateConfig, io: CliIo, opts: { readonly schema?: string; readonly barrierGidsAreSagaGids?: boolean } = {}): Promise<number> {
  const saga = config.saga ?? null;
  if (saga === null) throw new ConfigError([{ path: 'saga', message: 'no saga log is configured: set saga.database to the postgres:// URL of the database holding it' }]);
  const schema = opts.schema ?? saga.schema;
  const client = new pg.Client({ connectionString: saga.database, application_name: 'shardgate saga check' });
  try {
    await client.connect();
    const report = await checkSagaLogs(client, { schema, barrierGidsAreSagaGids: opts.barrierGidsAreSagaGids === true });
    for (const f of report.findings) io.out(`${f.invariant} ${f.table} ${f.key}: ${f.detail}`);
    for (const [invariant, n] of Object.entries(report.truncated)) io.out(`${invariant}: ${n} rows in all, the first 100 shown`);
    const counted = Object.entries(report.counted).map(([table, n]) => `${n} ${table}`).join(', ');
    if (Object.keys(report.counted).length === 0) {
      io.err(`shardgate: no saga, outbox or barrier table in schema "${schema}" of ${redactUrl(saga.database)}: nothing to check`);
      return 1;
    }
    if (report.findings.length === 0) {
      io.err(`shardgate: saga logs consistent (${counted} rows checked)`);
      return 0;
    }
    const total = report.findings.length + Object.values(report.truncated).reduce((a, n) => a + n - 100, 0);
    io.err(`shardgate: ${total} inconsistent row${total === 1 ? '' : 's'} in the saga logs (${counted} rows checked); see src/saga/README.md "Integrity check" for what each invariant means`);
    return 1;
  } catch (err) {
    io.err(`shardgate: saga check of ${redactUrl(saga.database)} failed: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  } finally {
    await client.end().catch(() => undefined);
  }
}
