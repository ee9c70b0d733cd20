import pg from 'pg';
import { ensureOutboxTables } from '../../../src/saga/outbox.js';
import { SagaCoordinator } from '../../../src/saga/saga-coordinator.js';
import { PgCluster } from '../../harness/cluster.js';
import { Participant } from './participant.js';

/** A PostgreSQL cluster with the saga log and outbox tables in database `app`, a pool to it, and an HTTP participant. */
export interface SagaFixture {
  readonly cluster: PgCluster;
  readonly pool: pg.Pool;
  readonly shop: Participant;
  close(): Promise<void>;
}

export async function openSagaFixture(): Promise<SagaFixture> {
  const cluster = await PgCluster.create({ databases: ['app'] });
  const pool = new pg.Pool({ connectionString: cluster.url('app'), max: 6 });
  const shop = await Participant.start();
  await new SagaCoordinator({ pool, id: 'setup', definitions: {} }).ensureTables();
  const client = await pool.connect();
  await ensureOutboxTables(client).finally(() => client.release());
  return {
    cluster,
    pool,
    shop,
    async close() {
      await pool.end();
      await shop.close();
      await cluster.destroy();
    },
  };
}
