// A coordinator process that submits and runs payments (saga or TCC) under the
// mode settings of a configuration file, and re-reads them on SIGHUP.
// Environment: CONFIG (the file), BASE_URL (participant), COORDINATOR_ID.
// stdin: one gid per line, submitted as a payment; stdout: `submitted <gid> <mode>`,
// `reloaded` or `refused <reason as JSON>`, and `ready` once polling.
import { createInterface } from 'node:readline';
import pg from 'pg';
import { loadConfig } from '../../../src/config/load.js';
import { SagaCoordinator } from '../../../src/saga/saga-coordinator.js';
import { paymentClass } from './participant.js';

const file = process.env['CONFIG'] ?? '';
const saga = loadConfig(file).saga!;
const pool = new pg.Pool({ connectionString: saga.database });
const coordinator = new SagaCoordinator({
  pool,
  id: process.env['COORDINATOR_ID'] ?? 'child',
  definitions: {},
  classes: { payment: paymentClass(process.env['BASE_URL'] ?? '', { baseMs: 5, maxMs: 20, maxAttempts: 50, deadlineMs: 120_000 }) },
  modes: saga.classes ?? {},
  schema: saga.schema,
  pollIntervalMs: 10,
  concurrency: 4,
});
process.on('SIGHUP', () => {
  const r = coordinator.reloadModes(() => loadConfig(file));
  process.stdout.write(r.ok ? 'reloaded\n' : `refused ${JSON.stringify(r.reason)}\n`);
});
createInterface({ input: process.stdin }).on('line', (gid) => {
  void coordinator.submit(pool, 'payment', { gid }, { gid }).then(async () => {
    process.stdout.write(`submitted ${gid} ${(await coordinator.inspect(gid))!.mode}\n`);
  });
});
await coordinator.ensureTables();
coordinator.start();
process.stdout.write('ready\n');
