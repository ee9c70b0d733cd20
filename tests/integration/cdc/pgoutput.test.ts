import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgoutputDecoder, type PgoutputMessage, type TupleData } from '../../../src/cdc/index.js';
import { PgCluster } from '../../harness/cluster.js';

const values = (t: TupleData | null): (string | null)[] => (t ?? []).map((c) => (c.kind === 'text' ? c.value : null));

describe('pgoutput decoding against PostgreSQL', () => {
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

  it('decodes a slot with two_phase: changes, a committed and a rolled-back prepared transaction', async () => {
    await client.query('CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric)');
    await client.query('CREATE PUBLICATION p FOR TABLE accounts');
    await client.query("SELECT pg_create_logical_replication_slot('s', 'pgoutput', false, true)");
    await client.query("INSERT INTO accounts VALUES (1, 'ann', 10), (2, 'bob', NULL)");
    await client.query('UPDATE accounts SET balance = 20 WHERE id = 1');
    await client.query('DELETE FROM accounts WHERE id = 2');
    await client.query("BEGIN; INSERT INTO accounts VALUES (3, 'cy', 30); PREPARE TRANSACTION 'sg_c1_s0_abc_s1'");
    await client.query("COMMIT PREPARED 'sg_c1_s0_abc_s1'");
    await client.query("BEGIN; INSERT INTO accounts VALUES (4, 'di', 40); PREPARE TRANSACTION 'sg_c1_s0_abd_s1'");
    await client.query("ROLLBACK PREPARED 'sg_c1_s0_abd_s1'");
    await client.query('TRUNCATE accounts');

    const { rows } = await client.query<{ data: Buffer }>(
      "SELECT data FROM pg_logical_slot_peek_binary_changes('s', NULL, NULL, 'proto_version', '3', 'publication_names', 'p', 'two_phase', 'on')",
    );
    const decoder = new PgoutputDecoder();
    const messages: PgoutputMessage[] = rows.map((r) => decoder.decode(r.data));
    const summary = messages.map((m) => {
      switch (m.kind) {
        case 'Relation': return `R ${m.namespace}.${m.name} ${m.columns.map((c) => c.name).join(',')}`;
        case 'Insert': return `I ${JSON.stringify(values(m.newTuple))}`;
        case 'Update': return `U ${JSON.stringify(values(m.newTuple))}`;
        case 'Delete': return `D ${JSON.stringify(values(m.key))}`;
        case 'Truncate': return `T ${m.relationOids.length}`;
        case 'BeginPrepare': case 'Prepare': case 'CommitPrepared': case 'RollbackPrepared': return `${m.kind} ${m.gid}`;
        default: return m.kind;
      }
    });
    expect(summary).toEqual([
      'Begin', 'R public.accounts id,owner,balance', 'I ["1","ann","10"]', 'I ["2","bob",null]', 'Commit',
      // The Relation message comes once per decoding session, and again after the table's
      // cached schema is invalidated (here by TRUNCATE).
      'Begin', 'U ["1","ann","20"]', 'Commit',
      'Begin', 'D ["2",null,null]', 'Commit',
      'BeginPrepare sg_c1_s0_abc_s1', 'I ["3","cy","30"]', 'Prepare sg_c1_s0_abc_s1',
      'CommitPrepared sg_c1_s0_abc_s1',
      'BeginPrepare sg_c1_s0_abd_s1', 'I ["4","di","40"]', 'Prepare sg_c1_s0_abd_s1',
      'RollbackPrepared sg_c1_s0_abd_s1',
      'Begin', 'R public.accounts id,owner,balance', 'T 1', 'Commit',
    ]);
  });
});
