import { sgError } from '../../../src/errors/catalogue.js';
import { PgError } from '../../../src/errors/pg-error.js';
import type { AdminSource, InDoubtTx, InFlightTx, ShardHealth } from '../../../src/admin/admin-source.js';

/** An AdminSource over fixed data that records what it was asked to do. */
export class FakeAdminSource implements AdminSource {
  readonly resolved: string[] = [];
  reloads = 0;
  reloadResult: { ok: boolean; reason?: string } = { ok: true };
  failShards = false;
  inFlightTx: InFlightTx[] = [
    {
      gid: 'sg_gw1_s0_1',
      client: 'app@127.0.0.1:50000',
      startedAt: '2026-01-01T00:00:00.000Z',
      ageSeconds: 1.5,
      state: 'active',
      participants: ['s0', 's1'],
      currentStatement: "UPDATE account SET balance = balance - 1 WHERE id = 1 /*<script>*/",
    },
  ];
  inDoubtTx: InDoubtTx[] = [
    { gid: 'sg_gw1_s0_9', anchor: 's0', preparedOn: ['s1'], preparedAt: '2026-01-01T00:00:00.000Z', ageSeconds: 120, decision: 'commit', anchorReachable: true },
  ];

  inFlight(): readonly InFlightTx[] {
    return this.inFlightTx;
  }
  async inDoubt(): Promise<readonly InDoubtTx[]> {
    return this.inDoubtTx;
  }
  async shardHealth(): Promise<readonly ShardHealth[]> {
    if (this.failShards) throw new Error('health check crashed');
    return [
      { shard: 's0', kind: 'postgres', healthy: true, latencyMs: 0.4, error: null, pool: { inUse: 1, idle: 3, waiting: 0 } },
      { shard: 's1', kind: 'postgres', healthy: false, latencyMs: null, error: '08006 connection refused', pool: null },
    ];
  }
  async resolve(gid: string): Promise<{ gid: string; outcome: 'commit' | 'abort' }> {
    const tx = this.inDoubtTx.find((t) => t.gid === gid);
    if (tx === undefined) throw new PgError({ severity: 'ERROR', code: '42704', message: `transaction ${gid} is not in doubt` });
    if (tx.decision === null) throw sgError('commitOutcomeUnknown', { gid, shard: tx.anchor, reason: 'no recorded decision' });
    this.resolved.push(gid);
    this.inDoubtTx = this.inDoubtTx.filter((t) => t !== tx);
    return { gid, outcome: tx.decision };
  }
  config(): unknown {
    return { adminToken: 'token-token-token-1', shards: [{ name: 's0', url: 'postgres://pg:hunter2@127.0.0.1/app' }] };
  }
  async reload(): Promise<{ ok: boolean; reason?: string }> {
    this.reloads++;
    return this.reloadResult;
  }
}
