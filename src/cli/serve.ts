import { ConfigError } from '../config/load.js';
import type { RelayConfig, ShardGateConfig } from '../config/types.js';
import type { Pool } from 'pg';
import type { Metrics } from '../observe/metrics.js';
import type { SagaAdmin } from '../saga/saga-admin.js';
import { createLogger, redactUrl, type Logger } from '../observe/logger.js';
import type { CliIo } from './cli-io.js';
import { applyWasmTier } from './wasm-tier.js';

/** `host:port`, with brackets around IPv6 hosts. */
export function formatAddress(addr: { readonly host: string; readonly port: number }): string {
  return addr.host.includes(':') ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
}

/** The line `serve` prints once clients can connect; tools wait for it. */
export function listeningLine(addr: { readonly host: string; readonly port: number }, config: ShardGateConfig): string {
  const names = config.shards.map((s) => s.name).join(', ');
  return `shardgate listening on ${formatAddress(addr)} (${config.shards.length} shard${config.shards.length === 1 ? '' : 's'}: ${names})`;
}

/** A psql command line that connects to this proxy as its first user. */
export function psqlCommand(addr: { readonly host: string; readonly port: number }, config: ShardGateConfig): string {
  const user = config.auth.users[0];
  const host = addr.host.includes(':') ? `[${addr.host}]` : addr.host;
  if (user === undefined) return `psql -h ${addr.host} -p ${addr.port} -d ${config.database}`;
  const cred = `${encodeURIComponent(user.name)}:${encodeURIComponent(user.password)}`;
  return `psql "postgres://${cred}@${host}:${addr.port}/${encodeURIComponent(config.database)}"`;
}

/** Refuses to serve a configuration nobody can log in to. The library needs no users, the proxy does. */
function checkServable(config: ShardGateConfig): void {
  if (config.auth.users.length === 0 && !config.auth.trust) {
    throw new ConfigError([
      { path: 'auth.users', message: 'no user can log in: list users with passwords, or set auth.trust: true with a loopback listen address' },
    ]);
  }
}

/**
 * The saga log's admin API, outbox gauges and retention cleanup for `serve`,
 * over a small pool to `saga.database`. The pool connects lazily: an unreachable saga database makes
 * the saga endpoints answer 500 and the outbox gauges NaN, never stops the proxy.
 */
async function openSagaAdmin(saga: NonNullable<ShardGateConfig['saga']>, coordinatorId: string, metrics: Metrics, log: Logger): Promise<{ admin: SagaAdmin; close: () => Promise<void> }> {
  const { default: pg } = await import('pg');
  const { SagaAdmin } = await import('../saga/saga-admin.js');
  const { readOutboxStats } = await import('../saga/outbox.js');
  const { SagaCoordinator } = await import('../saga/saga-coordinator.js');
  const pool = new pg.Pool({ connectionString: saga.database, max: 2, application_name: 'shardgate admin' });
  // An idle connection that dies (the database restarted) must not crash the process.
  pool.on('error', () => undefined);
  metrics.setOutboxSource(() => readOutboxStats(pool, saga.schema));
  // The business database of the two-phase messages: its decision table is read by the back-check and cleaned here.
  const b = saga.relay?.backCheck;
  const business = b?.kind === 'database' ? new pg.Pool({ connectionString: b.database, max: 2, application_name: 'shardgate back-check' }) : null;
  business?.on('error', () => undefined);
  const decisions = business !== null && b?.kind === 'database' ? { client: business, ...(b.schema !== null ? { schema: b.schema } : {}) } : null;
  // Runs no sagas (no definitions, no pollers): only the cleanup of the retention, every minute.
  const cleaner = new SagaCoordinator({
    pool,
    id: coordinatorId,
    definitions: {},
    schema: saga.schema,
    concurrency: 0,
    cleanup: {
      retentionMs: saga.retentionMs,
      batch: saga.cleanupBatch,
      outbox: true,
      barrier: true,
      cancelled: true,
      ...(saga.inboxRetentionMs !== undefined ? { inboxRetentionMs: saga.inboxRetentionMs } : {}),
      ...(decisions !== null ? { messageDecisions: decisions } : {}),
    },
    onError: (err) => log.warn({ err }, 'saga log cleanup failed; retrying at the next pass'),
  });
  cleaner.start();
  const relay = saga.relay != null ? await startRelay(saga.relay, saga.database, saga.schema, business, metrics, log) : null;
  return {
    admin: new SagaAdmin({ pool, schema: saga.schema, metrics }),
    close: async () => {
      await relay?.close();
      await cleaner.close();
      await pool.end();
    },
  };
}

/**
 * `saga.relay`: the outbox relay over its own pool to `saga.database`, with a
 * sink that reconnects to its broker (a broker down leaves the rows unsent
 * and counted as failures until it is back), and the back-check when
 * configured. Nothing here connects before the first pass, so an unreachable
 * database or broker never stops the proxy: the passes fail, are logged, and
 * run again after the interval.
 */
async function startRelay(relay: RelayConfig, database: string, schema: string, business: Pool | null, metrics: Metrics, log: Logger): Promise<{ close: () => Promise<void> }> {
  const { default: pg } = await import('pg');
  const { OutboxRelay } = await import('../saga/outbox.js');
  const { decisionBackCheck, httpBackCheck } = await import('../saga/two-phase-message.js');
  const { connectBrokerSink } = await import('../messaging/reconnecting-sink.js');
  const pool = new pg.Pool({ connectionString: database, max: 2, application_name: 'shardgate relay' });
  pool.on('error', () => undefined);
  const b = relay.backCheck;
  const check = b === null ? null : b.kind === 'http' ? httpBackCheck(b.url) : decisionBackCheck(business!, b.schema !== null ? { schema: b.schema } : {});
  const sink = connectBrokerSink(relay.sink, 'shardgate relay');
  const outbox = new OutboxRelay({
    pool,
    sink,
    schema,
    batch: relay.batchSize,
    metrics,
    ...(b !== null && check !== null ? { backCheck: { check, afterMs: b.afterMs } } : {}),
    onError: (err) => log.warn({ err }, 'outbox relay pass failed; its messages stay unsent and are published at a later pass'),
  });
  outbox.start({ intervalMs: relay.intervalMs, ...(b !== null ? { backCheckIntervalMs: b.intervalMs } : {}) });
  return {
    close: async () => {
      await outbox.close();
      await sink.close();
      await pool.end();
      await business?.end();
    },
  };
}

/** Options of `serve`. */
export interface ServeOptions {
  /** Print a psql command and a few statements to try once listening. */
  readonly demo?: boolean;
  /** Reads and validates the configuration again (SIGHUP, POST /api/reload); absent: reload is refused. */
  readonly reloadConfig?: () => ShardGateConfig;
}

/**
 * Starts the proxy: shard connections, engine (which resolves leftover
 * prepared transactions before serving), wire server. Prints the listening
 * line on stdout, then runs until SIGINT/SIGTERM and closes gracefully
 * (exit status 0). A failure while starting closes whatever was opened and
 * returns 1.
 */
export async function serve(config: ShardGateConfig, io: CliIo, opts: ServeOptions = {}): Promise<number> {
  checkServable(config);
  // Before the engine loads the parser: which compiler its WebAssembly gets is decided when it is compiled.
  const wasmFlag = applyWasmTier(config);
  const root = createLogger({ env: io.env });
  const log = root.child({ component: 'cli' });
  log.info(
    {
      listen: formatAddress(config.listen),
      database: config.database,
      coordinatorId: config.coordinatorId,
      shards: config.shards.map((s) => ({ name: s.name, kind: s.kind, target: s.kind === 'embedded' ? s.dir : redactUrl(s.url) })),
      tables: [...config.tables.keys()],
      ...(wasmFlag !== null ? { v8Flags: [wasmFlag] } : {}),
    },
    'starting',
  );

  // Loaded here, not at the top: `version`, `status` and configuration errors need none of the engine.
  const { createConnector } = await import('../backend/connector.js');
  const { Engine } = await import('../engine/engine.js');
  const { ProxyServer } = await import('../server/proxy-server.js');
  const { AdminServer } = await import('../admin/admin-server.js');
  const { Metrics } = await import('../observe/metrics.js');
  const { EngineAdminSource } = await import('./admin-source.js');
  const { reloadEngineConfig } = await import('./config-reload.js');

  const closers: (() => Promise<void>)[] = [];
  const closeAll = async (): Promise<void> => {
    // Newest first: the server stops taking clients before the engine and the connections go.
    for (const close of closers.reverse()) {
      try {
        await close();
      } catch (err) {
        log.warn({ err }, 'error while closing');
      }
    }
    closers.length = 0;
  };

  try {
    const connector = await createConnector(config);
    closers.push(() => connector.close());
    for (const shard of config.shards) {
      log.info({ shard: shard.name, serverVersion: connector.serverVersion(shard.name) }, 'shard connected');
    }
    const engineLog = root.child({ component: 'engine' });
    // SHARDGATE_METRICS=off turns metrics and tracing off (to measure what they cost); SHARDGATE_TRACING=off only tracing.
    const observing = io.env.SHARDGATE_METRICS !== 'off';
    const metrics = observing ? new Metrics({ shards: config.shards.map((s) => s.name) }) : Metrics.disabled();
    const engine = await Engine.open(config, {
      connector,
      log: (level, msg, fields) => engineLog[level](fields, msg),
      metrics,
      tracing: observing && io.env.SHARDGATE_TRACING !== 'off',
      tagTransactions: true,
    });
    // The engine owns the connector from here on and closes it with itself.
    closers.length = 0;
    closers.push(() => engine.close());
    const server = new ProxyServer(engine, config, { log: root.child({ component: 'server' }) });
    closers.push(() => server.close());
    const addr = await server.listen();
    log.info({ listen: formatAddress(addr) }, 'listening');

    const reloadLog = root.child({ component: 'reload' });
    let reloading: Promise<{ ok: boolean; reason?: string }> | null = null;
    const reload = (): Promise<{ ok: boolean; reason?: string }> => {
      // One reload at a time; a second request while one runs gets the same answer.
      reloading ??= (async () => {
        try {
          if (opts.reloadConfig === undefined) return { ok: false, reason: 'this instance was started without a configuration file to re-read' };
          let next: ShardGateConfig;
          try {
            next = opts.reloadConfig();
          } catch (err) {
            const reason = err instanceof ConfigError ? err.issues.map((i) => `${i.path}: ${i.message}`).join('; ') : String(err);
            return { ok: false, reason: `invalid configuration: ${reason}` };
          }
          return await reloadEngineConfig(engine, next);
        } catch (err) {
          return { ok: false, reason: String(err) };
        }
      })().then((result) => {
        reloading = null;
        if (result.ok) reloadLog.info(result, 'configuration reloaded');
        else reloadLog.warn(result, 'configuration reload refused');
        return result;
      });
      return reloading;
    };
    const stopReloads = io.onReloadSignal?.(() => void reload());
    if (stopReloads !== undefined) closers.push(async () => stopReloads());

    const adminLog = root.child({ component: 'admin' });
    const sagas = config.saga != null ? await openSagaAdmin(config.saga, config.coordinatorId, metrics, adminLog) : null;
    if (sagas !== null) closers.push(sagas.close);
    const admin = AdminServer.fromConfig(config, new EngineAdminSource(engine, reload, adminLog), observing ? metrics : null, adminLog, sagas?.admin ?? null);
    if (admin !== null) {
      closers.push(() => admin.close());
      const at = await admin.listen();
      log.info({ admin: formatAddress(at) }, 'admin HTTP listening');
    }
    io.out(listeningLine(addr, config));
    if (opts.demo) {
      io.out(`try:  ${psqlCommand(addr, config)}`);
      io.out('  CREATE TABLE account (id bigint PRIMARY KEY, owner text, balance numeric NOT NULL);');
      io.out("  INSERT INTO account (id, owner, balance) VALUES (1, 'ann', 100), (2, 'bob', 100), (3, 'cy', 100), (4, 'dee', 100);");
      io.out('  BEGIN; UPDATE account SET balance = balance - 10 WHERE id = 1; UPDATE account SET balance = balance + 10 WHERE id = 2; COMMIT;');
      io.out('  SELECT sum(balance) FROM account;');
      io.out('stop with Ctrl-C');
    }
  } catch (err) {
    log.error({ err }, 'start-up failed');
    io.err(`shardgate: cannot start: ${err instanceof Error ? err.message : String(err)}`);
    await closeAll();
    return 1;
  }

  const signal = await io.onShutdownSignal();
  log.info({ signal }, 'shutting down');
  await closeAll();
  log.info({}, 'stopped');
  return 0;
}
