// A coordinator in its own process, so a test can kill it mid-saga.
// Environment: PG_URL (saga database), BASE_URL (participant), COORDINATOR_ID.
import pg from 'pg';
import { SagaCoordinator } from '../../../src/saga/saga-coordinator.js';
import { threeStepSaga } from './participant.js';

const pool = new pg.Pool({ connectionString: process.env['PG_URL'] });
const coordinator = new SagaCoordinator({
  pool,
  id: process.env['COORDINATOR_ID'] ?? 'child',
  definitions: { order: threeStepSaga(process.env['BASE_URL'] ?? '') },
  pollIntervalMs: 20,
  concurrency: 1,
});
coordinator.start();
process.stdout.write('ready\n');
