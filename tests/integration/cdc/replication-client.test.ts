import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Assembler, type CdcEvent } from '../../../src/cdc/assembler.js';
import { PgoutputDecoder } from '../../../src/cdc/decode-pgoutput.js';
import { formatLsn } from '../../../src/cdc/lsn.js';
import { ReplicationClient } from '../../../src/cdc/replication-client.js';
import type { ShardName } from '../../../src/config/names.js';
import { PgCluster } from '../../harness/cluster.js';

const TARGET = { slot: 'shardgate_cdc', publication: 'shardgate_cdc' };
const GID = 'sg_gw1_s0_abc';

describe('replication client against PostgreSQL', () => {
  let cluster: PgCluster;
  let client: pg.Client;

  beforeAll(async () => {
    cluster = await PgCluster.create();
    client = new pg.Client({ connectionString: cluster.url() });
    await client.connect();
  });
  afterAll(async () => {
    await client?.end();
    await cluster?.destroy();
  });

  it('creates publication and slot, streams a committed and a prepared transaction, and confirms what was acknowledged', async () => {
    await client.query('CREATE TABLE accounts (id int PRIMARY KEY, balance int)');
    const repl = await ReplicationClient.connect('s0' as ShardName, cluster.url());
    try {
      const start = await repl.ensure(TARGET);
      // Idempotent: a second call finds both and returns the same position.
      expect(await repl.ensure(TARGET)).toBe(start);
      await repl.start(TARGET);
      await client.query('INSERT INTO accounts VALUES (1, 10)');
      // A prepared branch whose gid names another shard as anchor and this one as participant.
      await client.query(`BEGIN; INSERT INTO accounts VALUES (2, 20); PREPARE TRANSACTION '${GID}_s0'`);
      await client.query(`ROLLBACK PREPARED '${GID}_s0'`);
      await client.query('INSERT INTO accounts VALUES (3, 30)');

      const decoder = new PgoutputDecoder();
      const assembler = new Assembler(['s0'], new Map([['s0', start]]));
      const events: CdcEvent[] = [];
      while (events.length < 2) {
        const m = await repl.next();
        if (m === null) throw new Error('stream ended');
        if (m.kind === 'XLogData') events.push(...assembler.push('s0', decoder.decode(m.data)));
      }
      expect(events.map((e) => e.changes.map((c) => c.new))).toEqual([[{ id: '1', balance: '10' }], [{ id: '3', balance: '30' }]]);
      expect(events.every((e) => e.kind === 'local' && /^s0:[0-9A-F]+\/[0-9A-F]+$/.test(e.id))).toBe(true);
      for (const e of events) assembler.acknowledge(e);
      const confirm = assembler.confirmable('s0');
      repl.status(confirm);
      await repl.stop();
      // Back in command mode on the same session: the status update was processed before CopyDone.
      const [[flushed]] = (await repl.command(`SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '${TARGET.slot}'`)) as [[string]];
      expect(flushed).toBe(formatLsn(confirm));
    } finally {
      await repl.close();
    }
  });
});
