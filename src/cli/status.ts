import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { connectPostgres, parsePostgresUrl, type BackendConnection } from '../backend/index.js';
import type { ShardGateConfig, ShardSpec } from '../config/types.js';
import { parsePreparedGid } from '../tx/gid.js';
import type { CliIo } from './cli-io.js';
import { formatAddress } from './serve.js';

/**
 * Age in milliseconds past which a prepared transaction of ours is in doubt:
 * recovery takes branches older than its grace period (2 × prepareTimeoutMs),
 * so a running ShardGate has had a whole recovery interval to finish one this
 * old. One still prepared then waits for an unreachable anchor, or for any
 * ShardGate (or `shardgate recover`) to run at all.
 */
export function inDoubtAfterMs(config: ShardGateConfig): number {
  return 2 * config.transactions.prepareTimeoutMs + config.transactions.recoveryIntervalMs;
}

/** A prepared branch of ours as `status` reports it. */
export interface PreparedBranchStatus {
  /** The global transaction's gid (`sg_<coordinator>_<anchor>_<unique>`), or the prepared identifier when it does not parse. */
  readonly gid: string;
  /** The identifier in `pg_prepared_xacts`. */
  readonly preparedGid: string;
  /** The shard holding the decision row; null when the identifier does not name one. */
  readonly anchor: string | null;
  readonly ageS: number;
}

/** What `status` found on one shard. */
export interface ShardStatus {
  readonly shard: string;
  readonly reachable: boolean;
  readonly serverVersion: string | null;
  /** null when not checked (embedded shards get theirs from ShardGate). */
  readonly maxPreparedTransactions: number | null;
  /** Prepared transactions whose gid is ours (`sg_…`), oldest first, with their anchor and age in seconds. */
  readonly prepared: readonly PreparedBranchStatus[];
  /** Something an operator must fix, with the fix; empty when healthy. */
  readonly problems: readonly string[];
  /** A remark that is not a problem. */
  readonly note?: string;
}

const PREPARED_SQL = `SELECT gid, EXTRACT(EPOCH FROM now() - prepared)::float8 AS age
  FROM pg_prepared_xacts WHERE gid LIKE 'sg\\_%' AND database = current_database() ORDER BY prepared`;

function preparedBranches(rows: readonly { gid: string; age: number }[]): PreparedBranchStatus[] {
  return rows.map((r) => {
    const parsed = parsePreparedGid(r.gid);
    return { gid: parsed?.gid ?? r.gid, preparedGid: r.gid, anchor: parsed?.anchor ?? null, ageS: Number(r.age) };
  });
}

async function checkPostgres(spec: Extract<ShardSpec, { kind: 'postgres' }>): Promise<ShardStatus> {
  // The engine's own connection code: the shard URL's sslmode and credentials mean what they mean to `serve`.
  let conn: BackendConnection;
  try {
    conn = await connectPostgres(spec.name, parsePostgresUrl(spec.url), { connectTimeoutMs: 5000 });
  } catch (err) {
    return {
      shard: spec.name,
      reachable: false,
      serverVersion: null,
      maxPreparedTransactions: null,
      prepared: [],
      problems: [`cannot connect to ${spec.name}: ${(err as Error).message}; check that the server runs and that shards.${spec.name} is right`],
    };
  }
  try {
    const settings = await conn.rows("SELECT current_setting('server_version'), current_setting('max_prepared_transactions')");
    const prepared = await conn.rows(PREPARED_SQL);
    const mpt = Number(settings[0]?.[1] ?? 0);
    const list = preparedBranches(prepared.map(([gid, age]) => ({ gid: gid!, age: Number(age) })));
    const problems: string[] = [];
    if (!(mpt > 0)) {
      problems.push(
        `max_prepared_transactions is 0 on ${spec.name}, so two-phase commit cannot work: ` +
          'set max_prepared_transactions = 100 (at least pool.maxPerShard) in postgresql.conf and restart the server',
      );
    }
    return { shard: spec.name, reachable: true, serverVersion: settings[0]?.[0] ?? null, maxPreparedTransactions: mpt, prepared: list, problems };
  } catch (err) {
    return {
      shard: spec.name,
      reachable: true,
      serverVersion: null,
      maxPreparedTransactions: null,
      prepared: [],
      problems: [`query on ${spec.name} failed: ${(err as Error).message}`],
    };
  } finally {
    await conn.close().catch(() => undefined);
  }
}

/** True when something accepts TCP connections at the address (within one second). */
export function acceptingConnections(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function checkEmbedded(spec: Extract<ShardSpec, { kind: 'embedded' }>, inUse: string | null): Promise<ShardStatus> {
  const base = { shard: spec.name, maxPreparedTransactions: null } as const;
  if (!existsSync(spec.dir)) {
    return { ...base, reachable: true, serverVersion: null, prepared: [], problems: [], note: `not created yet (${spec.dir} is created by serve)` };
  }
  if (inUse !== null) {
    // An embedded shard is one single-user PostgreSQL: opening it from a second process could corrupt it.
    return { ...base, reachable: true, serverVersion: null, prepared: [], problems: [], note: `in use by the shardgate listening on ${inUse}` };
  }
  const { PGlite } = await import('@electric-sql/pglite');
  let db: InstanceType<typeof PGlite> | undefined;
  try {
    // Prepared transactions left on disk need room at start-up, as when ShardGate opens the shard.
    db = await PGlite.create(spec.dir, { startParams: [...PGlite.defaultStartParams, '-c', 'max_prepared_transactions=100'] });
    const v = await db.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    const prepared = await db.query<{ gid: string; age: number }>(PREPARED_SQL);
    return { ...base, reachable: true, serverVersion: v.rows[0]?.v ?? null, prepared: preparedBranches(prepared.rows), problems: [] };
  } catch (err) {
    return { ...base, reachable: false, serverVersion: null, prepared: [], problems: [`cannot open embedded shard ${spec.name} at ${spec.dir}: ${(err as Error).message}`] };
  } finally {
    await db?.close().catch(() => undefined);
  }
}

/** Checks every shard (in parallel) and returns what was found, in configuration order. Opens nothing for writing. */
export async function shardStatuses(config: ShardGateConfig): Promise<ShardStatus[]> {
  const hasEmbedded = config.shards.some((s) => s.kind === 'embedded');
  const inUse = hasEmbedded && (await acceptingConnections(config.listen.host, config.listen.port)) ? formatAddress(config.listen) : null;
  return Promise.all(config.shards.map((s) => (s.kind === 'postgres' ? checkPostgres(s) : checkEmbedded(s, inUse))));
}

/** A prepared branch older than `inDoubtAfterMs`, with what is known of its anchor. */
export interface InDoubtBranch extends PreparedBranchStatus {
  /** The shard holding the prepared branch. */
  readonly shard: string;
  /** 'reachable', 'UNREACHABLE', or 'unknown' when the identifier names no configured shard (recovery never guesses one). */
  readonly anchorState: 'reachable' | 'UNREACHABLE' | 'unknown';
}

/** The in-doubt branches among `statuses`, oldest first. */
export function inDoubtBranches(config: ShardGateConfig, statuses: readonly ShardStatus[]): InDoubtBranch[] {
  const afterS = inDoubtAfterMs(config) / 1000;
  const reachable = new Map(statuses.map((s) => [s.shard, s.reachable]));
  return statuses
    .flatMap((s) =>
      s.prepared
        .filter((p) => p.ageS >= afterS)
        .map((p): InDoubtBranch => {
          const known = p.anchor === null ? undefined : reachable.get(p.anchor);
          return { ...p, shard: s.shard, anchorState: known === undefined ? 'unknown' : known ? 'reachable' : 'UNREACHABLE' };
        }),
    )
    .sort((a, b) => b.ageS - a.ageS);
}

/** `gid on shard: anchor s0, 12 s old` — the gid and shard as `shardgate recover` prints them. */
function branchLine(p: PreparedBranchStatus, shard: string, anchorState?: InDoubtBranch['anchorState']): string {
  const anchor = p.anchor === null ? 'anchor ? (not a ShardGate gid)' : `anchor ${p.anchor}${anchorState === undefined || anchorState === 'reachable' ? '' : ` ${anchorState === 'unknown' ? '(not a configured shard)' : 'UNREACHABLE'}`}`;
  return `${p.gid} on ${shard}: ${anchor}, ${Math.round(p.ageS)} s old`;
}

/**
 * `shardgate status`: one line per shard (reachable, server version,
 * max_prepared_transactions, number of prepared transactions of ours), one
 * indented line per prepared transaction (gid, anchor, age, and `in doubt`
 * once older than `inDoubtAfterMs`), then every problem with its fix on
 * stderr. Exit status 0 when all is well; 1 when a shard has a problem or a
 * transaction is in doubt.
 */
export async function status(config: ShardGateConfig, io: CliIo, configFile?: string): Promise<number> {
  const statuses = await shardStatuses(config);
  const afterS = inDoubtAfterMs(config) / 1000;
  for (const s of statuses) {
    const parts = [
      s.reachable ? 'reachable' : 'UNREACHABLE',
      `version ${s.serverVersion ?? '-'}`,
      `max_prepared_transactions ${s.maxPreparedTransactions ?? (config.shards.find((x) => x.name === s.shard)?.kind === 'embedded' ? 'set by shardgate' : '-')}`,
      `prepared ${s.prepared.length}`,
    ];
    io.out(`${s.shard}: ${parts.join(', ')}${s.note ? ` (${s.note})` : ''}`);
    // Younger branches are most likely mid-commit; they are listed, but only old ones are in doubt.
    for (const p of s.prepared) io.out(`  ${branchLine(p, s.shard)}${p.ageS >= afterS ? ', in doubt' : ''}`);
  }
  const inDoubt = inDoubtBranches(config, statuses);
  const problems = statuses.flatMap((s) => s.problems);
  if (inDoubt.length > 0) {
    const configHint = configFile ? ` --config ${configFile}` : '';
    for (const t of inDoubt) problems.push(`in doubt: ${branchLine(t, t.shard, t.anchorState)}`);
    problems.push(
      `${inDoubt.length} in-doubt transaction branch${inDoubt.length === 1 ? '' : 'es'} (prepared over ${afterS} s ago): ` +
        `run \`shardgate recover${configHint}\`; an UNREACHABLE anchor must be back online first, its decision is never guessed`,
    );
  }
  if (problems.length === 0) {
    io.out(`ok: ${statuses.length} shard${statuses.length === 1 ? '' : 's'}`);
    return 0;
  }
  for (const p of problems) io.err(`shardgate: ${p}`);
  return 1;
}
