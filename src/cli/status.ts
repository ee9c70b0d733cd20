import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import pg from 'pg';
import type { ShardGateConfig, ShardSpec } from '../config/types.js';
import type { CliIo } from './cli-io.js';
import { formatAddress } from './serve.js';

/** A prepared transaction of ours older than this is in doubt: recovery should have resolved it. */
export const IN_DOUBT_AFTER_S = 60;

/** What `status` found on one shard. */
export interface ShardStatus {
  readonly shard: string;
  readonly reachable: boolean;
  readonly serverVersion: string | null;
  /** null when not checked (embedded shards get theirs from ShardGate). */
  readonly maxPreparedTransactions: number | null;
  /** Prepared transactions whose gid is ours (`sg_…`), with their age in seconds. */
  readonly prepared: readonly { readonly gid: string; readonly ageS: number }[];
  /** Something an operator must fix, with the fix; empty when healthy. */
  readonly problems: readonly string[];
  /** A remark that is not a problem. */
  readonly note?: string;
}

const PREPARED_SQL = `SELECT gid, EXTRACT(EPOCH FROM now() - prepared)::float8 AS age
  FROM pg_prepared_xacts WHERE gid LIKE 'sg\\_%' AND database = current_database() ORDER BY prepared`;

function inDoubtProblems(shard: string, prepared: ShardStatus['prepared'], configHint: string): string[] {
  const old = prepared.filter((p) => p.ageS >= IN_DOUBT_AFTER_S);
  if (old.length === 0) return [];
  return [
    `${old.length} in-doubt transaction(s) on ${shard}, oldest ${Math.round(old[0]!.ageS)} s (${old[0]!.gid}): ` +
      `run \`shardgate recover${configHint}\`; if it cannot finish them, bring their anchor shard back online first`,
  ];
}

async function checkPostgres(spec: Extract<ShardSpec, { kind: 'postgres' }>, configHint: string): Promise<ShardStatus> {
  const client = new pg.Client({ connectionString: spec.url, connectionTimeoutMillis: 5000, application_name: 'shardgate status' });
  client.on('error', () => undefined);
  try {
    await client.connect();
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
    const settings = await client.query<{ v: string; mpt: string }>(
      "SELECT current_setting('server_version') AS v, current_setting('max_prepared_transactions') AS mpt",
    );
    const prepared = await client.query<{ gid: string; age: number }>(PREPARED_SQL);
    const mpt = Number(settings.rows[0]?.mpt ?? 0);
    const list = prepared.rows.map((r) => ({ gid: r.gid, ageS: Number(r.age) }));
    const problems: string[] = [];
    if (!(mpt > 0)) {
      problems.push(
        `max_prepared_transactions is 0 on ${spec.name}, so two-phase commit cannot work: ` +
          'set max_prepared_transactions = 100 (at least pool.maxPerShard) in postgresql.conf and restart the server',
      );
    }
    problems.push(...inDoubtProblems(spec.name, list, configHint));
    return { shard: spec.name, reachable: true, serverVersion: settings.rows[0]?.v ?? null, maxPreparedTransactions: mpt, prepared: list, problems };
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
    await client.end().catch(() => undefined);
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

async function checkEmbedded(spec: Extract<ShardSpec, { kind: 'embedded' }>, inUse: string | null, configHint: string): Promise<ShardStatus> {
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
    const list = prepared.rows.map((r) => ({ gid: r.gid, ageS: Number(r.age) }));
    return { ...base, reachable: true, serverVersion: v.rows[0]?.v ?? null, prepared: list, problems: inDoubtProblems(spec.name, list, configHint) };
  } catch (err) {
    return { ...base, reachable: false, serverVersion: null, prepared: [], problems: [`cannot open embedded shard ${spec.name} at ${spec.dir}: ${(err as Error).message}`] };
  } finally {
    await db?.close().catch(() => undefined);
  }
}

/** Checks every shard (in parallel) and returns what was found, in configuration order. Opens nothing for writing. */
export async function shardStatuses(config: ShardGateConfig, configFile?: string): Promise<ShardStatus[]> {
  const configHint = configFile ? ` --config ${configFile}` : '';
  const hasEmbedded = config.shards.some((s) => s.kind === 'embedded');
  const inUse = hasEmbedded && (await acceptingConnections(config.listen.host, config.listen.port)) ? formatAddress(config.listen) : null;
  return Promise.all(config.shards.map((s) => (s.kind === 'postgres' ? checkPostgres(s, configHint) : checkEmbedded(s, inUse, configHint))));
}

/**
 * `shardgate status`: one line per shard (reachable, server version,
 * max_prepared_transactions, prepared transactions of ours), then every
 * problem with its fix. Exit status 0 when all is well, 1 otherwise.
 */
export async function status(config: ShardGateConfig, io: CliIo, configFile?: string): Promise<number> {
  const statuses = await shardStatuses(config, configFile);
  for (const s of statuses) {
    const parts = [
      s.reachable ? 'reachable' : 'UNREACHABLE',
      `version ${s.serverVersion ?? '-'}`,
      `max_prepared_transactions ${s.maxPreparedTransactions ?? (config.shards.find((x) => x.name === s.shard)?.kind === 'embedded' ? 'set by shardgate' : '-')}`,
      `prepared ${s.prepared.length}`,
    ];
    io.out(`${s.shard}: ${parts.join(', ')}${s.note ? ` (${s.note})` : ''}`);
  }
  const problems = statuses.flatMap((s) => s.problems);
  if (problems.length === 0) {
    io.out(`ok: ${statuses.length} shard${statuses.length === 1 ? '' : 's'}`);
    return 0;
  }
  for (const p of problems) io.err(`shardgate: ${p}`);
  return 1;
}
