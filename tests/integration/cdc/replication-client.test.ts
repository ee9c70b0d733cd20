import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Assembler, type CdcEvent } from '../../../src/cdc/assembler.js';
import { PgoutputDecoder } from '../../../src/cdc/decode-pgoutput.js';
import { formatLsn, type Lsn } from '../../../src/cdc/lsn.js';
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

  it('assembles a two-phase transaction over two shards into one event, and never a rolled-back one', async () => {
    const two = await PgCluster.create({ databases: ['a', 'b'] });
    const shards = ['s0', 's1'] as const;
    const sql = new Map<string, pg.Client>();
    const repls = new Map<string, ReplicationClient>();
    try {
      for (const [i, s] of shards.entries()) {
        const c = new pg.Client({ connectionString: two.url(i === 0 ? 'a' : 'b') });
        await c.connect();
        sql.set(s, c);
        await c.query('CREATE TABLE accounts (id int PRIMARY KEY, balance int)');
        await c.query('CREATE SCHEMA shardgate');
        await c.query("CREATE TABLE shardgate.tx_decision (gid text PRIMARY KEY, outcome text NOT NULL, participants text[] NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL DEFAULT now())");
      }
      const starts = new Map<string, Lsn>();
      for (const [i, s] of shards.entries()) {
        const r = await ReplicationClient.connect(s as ShardName, two.url(i === 0 ? 'a' : 'b'));
        repls.set(s, r);
        // Slots are per cluster, and both shards live in one: one slot name per shard.
        const target = { ...TARGET, slot: `shardgate_cdc_${s}` };
        starts.set(s, await r.ensure(target));
        await r.start(target);
      }
      const s0 = sql.get('s0')!;
      const s1 = sql.get('s1')!;
      // Rolled back: prepared on s1, never decided on s0.
      await s1.query(`BEGIN; INSERT INTO accounts VALUES (99, 1); PREPARE TRANSACTION 'sg_gw1_s0_dead_s1'`);
      await s1.query("ROLLBACK PREPARED 'sg_gw1_s0_dead_s1'");
      // Committed: the protocol of DESIGN.md, anchor s0.
      await s1.query(`BEGIN; INSERT INTO accounts VALUES (2, -5); PREPARE TRANSACTION '${GID}_s1'`);
      await s0.query(`BEGIN; INSERT INTO accounts VALUES (1, 5); INSERT INTO shardgate.tx_decision (gid, outcome, participants) VALUES ('${GID}', 'commit', '{s1}'); COMMIT`);
      await s1.query(`COMMIT PREPARED '${GID}_s1'`);
      await s0.query('INSERT INTO accounts VALUES (3, 0)');

      const assembler = new Assembler([...shards], starts);
      const events: CdcEvent[] = [];
      // Read s1 to its COMMIT PREPARED first, then s0: the global event can only appear during s0's reading.
      const readUntil = async (s: string, done: () => boolean): Promise<void> => {
        const decoder = new PgoutputDecoder();
        while (!done()) {
          const m = await repls.get(s)!.next();
          if (m === null) throw new Error('stream ended');
          if (m.kind === 'XLogData') {
            const msg = decoder.decode(m.data);
            events.push(...assembler.push(s, msg));
            if (msg.kind === 'CommitPrepared') return;
          }
        }
      };
      await readUntil('s1', () => false);
      expect(events).toEqual([]);
      expect(assembler.held).toBe(1);
      await readUntil('s0', () => events.length === 2);
      expect(events.map((e) => [e.id, e.shards, e.changes.map((c) => c.new?.id)])).toEqual([
        [GID, ['s0', 's1'], ['1', '2']],
        [events[1]!.id, ['s0'], ['3']],
      ]);
    } finally {
      for (const r of repls.values()) await r.close();
      for (const c of sql.values()) await c.end();
      await two.destroy();
    }
  });
});
