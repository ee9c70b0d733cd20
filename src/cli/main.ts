import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { loadConfig, type LoadOptions } from '../config/load.js';
import type { ShardGateConfig } from '../config/types.js';
import { cdc, CDC_DEFAULTS, type CdcFlags } from './cdc.js';
import { processIo, withConfigErrors, type CliIo } from './cli-io.js';
import { EXPORT_DEFAULTS, exportCommand, exportHoldCommand, importCommand, type ExportFlags, type ExportHoldFlags, type ImportFlags } from './export.js';
import { recover } from './recover.js';
import { restorePoint } from './restore-point.js';
import { sagaCheck } from './saga-check.js';
import { serve } from './serve.js';
import { status } from './status.js';

/** ShardGate's version, from package.json (two folders up from both src/cli and dist/cli). */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

interface ConfigFlags {
  readonly config?: string;
  readonly listen?: string;
}

function load(flags: ConfigFlags, io: CliIo): ShardGateConfig {
  const opts: LoadOptions = { env: io.env, ...(flags.listen !== undefined ? { overrides: { listen: flags.listen } } : {}) };
  return loadConfig(flags.config, opts);
}

/**
 * Runs the `shardgate` command line (`argv` as in process.argv: node, script,
 * arguments) and resolves with the exit status: 0 success, 1 failure,
 * 2 configuration error (reported before anything starts). Commands:
 * serve, demo, status, recover, restore-point, cdc, export, import, saga check, version.
 */
export async function main(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  let code = 0;
  const program = new Command()
    .name('shardgate')
    .description('PostgreSQL sharding proxy that never loses a cross-shard transaction')
    .version(version(), '-V, --version')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s.replace(/\n$/, '')),
      writeErr: (s) => io.err(s.replace(/\n$/, '')),
    })
    .showHelpAfterError();

  const configOption = '-c, --config <file>';
  const configHelp = 'configuration file (YAML); default: $SHARDGATE_CONFIG, else the embedded default';

  program
    .command('serve')
    .description('run the proxy until SIGINT/SIGTERM')
    .option(configOption, configHelp)
    .option('-l, --listen <host:port>', 'address for PostgreSQL clients (overrides listen)')
    .action(async (flags: ConfigFlags) => {
      code = await withConfigErrors(io, () => serve(load(flags, io), io, { reloadConfig: () => load(flags, io) }));
    });

  program
    .command('demo')
    .description('serve the embedded default (four local shards) and print a psql command to try')
    .option('-l, --listen <host:port>', 'address for PostgreSQL clients')
    .action(async (flags: { listen?: string }) => {
      // The demo is always the embedded default, whatever SHARDGATE_CONFIG says.
      code = await withConfigErrors(io, () =>
        serve(loadConfig(undefined, { env: {}, ...(flags.listen !== undefined ? { overrides: { listen: flags.listen } } : {}) }), io, { demo: true }),
      );
    });

  program
    .command('status')
    .description('check every shard: reachable, version, max_prepared_transactions, in-doubt transactions')
    .option(configOption, configHelp)
    .action(async (flags: ConfigFlags) => {
      code = await withConfigErrors(io, () => status(load(flags, io), io, flags.config ?? io.env.SHARDGATE_CONFIG));
    });

  program
    .command('recover')
    .description('run one recovery pass over prepared transactions and print each decision')
    .option(configOption, configHelp)
    .action(async (flags: ConfigFlags) => {
      code = await withConfigErrors(io, () => recover(load(flags, io), io));
    });

  program
    .command('restore-point')
    .description('create a named restore point on every shard at one cut (pg_create_restore_point)')
    .argument('<name>', 'the restore point name (recovery_target_name)')
    .option(configOption, configHelp)
    .action(async (name: string, flags: ConfigFlags) => {
      code = await withConfigErrors(io, () => restorePoint(load(flags, io), name, io));
    });

  program
    .command('cdc')
    .description('stream every committed transaction, cross-shard ones whole, to a sink until SIGINT/SIGTERM')
    .option(configOption, configHelp)
    .option('--sink <name>', 'stdout (JSON lines), nats (JetStream), rabbitmq or webhook', CDC_DEFAULTS.sink)
    .option('--subject <name>', 'NATS subject, or RabbitMQ routing key (the queue on the default exchange)', CDC_DEFAULTS.subject)
    .option('--nats-url <url>', 'NATS server', CDC_DEFAULTS.natsUrl)
    .option('--nats-stream <name>', 'JetStream stream to publish into, created over the subject when missing', CDC_DEFAULTS.natsStream)
    .option('--amqp-url <url>', 'RabbitMQ server', CDC_DEFAULTS.amqpUrl)
    .option('--exchange <name>', "RabbitMQ exchange ('' is the default exchange)", '')
    .option('--webhook-url <url>', 'URL each batch of events is POSTed to as a JSON array')
    .option('--webhook-header <header...>', 'extra request header for the webhook, "Name: value" (repeatable)')
    .option('--from-manifest <file>', "start exactly where an export (shardgate export --cdc) ends: its manifest.json")
    .option('--slot-prefix <prefix>', 'replication slot of each shard: prefix + shard name', CDC_DEFAULTS.slotPrefix)
    .option('--publication <name>', 'publication (FOR ALL TABLES) on each shard', CDC_DEFAULTS.publication)
    .option('--metrics-listen <host:port>', 'serve Prometheus metrics at /metrics (for example 127.0.0.1:9465)')
    .option('--memory-limit <bytes>', `changes held in memory above which the largest transactions spill to files (bytes, or with kB, MB, GB, TB, KiB, MiB, GiB, TiB); overrides cdc.memoryLimit (default ${CDC_DEFAULTS.memoryLimit})`)
    .option('--spill-dir <dir>', 'where transactions spill; emptied at start; overrides cdc.spillDir (default: a folder under the system temp dir named after the slots)')
    .option('--max-waiting-parts <n>', `parts committed on a shard and waiting for another (lagging) shard at which that shard stops being read; overrides cdc.maxWaitingParts (default ${CDC_DEFAULTS.maxWaitingParts})`)
    .option('--max-message-bytes <bytes>', 'rabbitmq: largest message the broker takes (its max_message_size); a larger transaction stops the command (nats: the server says)', CDC_DEFAULTS.maxMessageBytes)
    .action(async (flags: ConfigFlags & CdcFlags) => {
      code = await withConfigErrors(io, () => cdc(load(flags, io), flags, io));
    });

  const saga = program.command('saga').description('the saga, outbox and barrier logs (saga.database)');
  saga
    .command('check')
    .description('check every invariant of the saga, outbox and barrier logs; print each inconsistent row, exit 1 if any (run daily)')
    .option(configOption, configHelp)
    .option('--schema <name>', 'schema of the logs (overrides saga.schema)')
    .option('--barrier-gids-are-saga-gids', 'also report barrier fences whose gid is no saga\'s (when TCC participants are called from saga steps)')
    .action(async (flags: ConfigFlags & { schema?: string; barrierGidsAreSagaGids?: boolean }) => {
      code = await withConfigErrors(io, () =>
        sagaCheck(load(flags, io), io, { ...(flags.schema !== undefined ? { schema: flags.schema } : {}), barrierGidsAreSagaGids: flags.barrierGidsAreSagaGids === true }),
      );
    });

  program
    .command('export')
    .description('export every shard at one cut: schema, then rows in primary-key chunks (CSV, gzip), a manifest with checksums; rerun to resume')
    .requiredOption('--out <dir>', 'folder of the export (new or empty; an unfinished export there is resumed)')
    .option(configOption, configHelp)
    .option('-j, --jobs <n>', 'chunks exported at the same time', EXPORT_DEFAULTS.jobs)
    .option('--chunk-rows <n>', 'rows per chunk (about)', EXPORT_DEFAULTS.chunkRows)
    .option('--cdc', 'create a replication slot and publication per shard before the cut, for `shardgate cdc --from-manifest`')
    .option('--slot-prefix <prefix>', 'with --cdc: replication slot of each shard is prefix + shard name', CDC_DEFAULTS.slotPrefix)
    .option('--publication <name>', 'with --cdc: publication (FOR ALL TABLES) on each shard', CDC_DEFAULTS.publication)
    .option('--allow-no-primary-key', 'export tables without a primary key as one chunk per shard (with a warning)')
    .option('--hold-seconds <n>', 'how long the cut is kept for a resume after the exporting process stopped', EXPORT_DEFAULTS.holdSeconds)
    .action(async (flags: ExportFlags) => {
      code = await withConfigErrors(io, () => exportCommand(load(flags, io), flags, io));
    });

  program
    .command('export-hold', { hidden: true })
    .description("hold an export's cut (started by export)")
    .requiredOption('--out <dir>', 'folder of the export')
    .requiredOption('--cut-id <id>', 'the cut id')
    .option(configOption, configHelp)
    .option('--cdc', 'create the replication slots first')
    .option('--slot-prefix <prefix>', 'replication slot prefix', CDC_DEFAULTS.slotPrefix)
    .option('--publication <name>', 'publication', CDC_DEFAULTS.publication)
    .option('--hold-seconds <n>', 'lease', EXPORT_DEFAULTS.holdSeconds)
    .action(async (flags: ExportHoldFlags & ConfigFlags) => {
      code = await withConfigErrors(io, () => exportHoldCommand(load(flags, io), flags, io));
    });

  program
    .command('import')
    .description("load an export into the configured shards, placing rows by this configuration's rules; rerun to resume")
    .argument('<dir>', 'folder of a complete export')
    .option(configOption, configHelp)
    .option('-j, --jobs <n>', 'chunks loaded at the same time', EXPORT_DEFAULTS.jobs)
    .option('--skip-unenforceable-foreign-keys', "load without the foreign keys the target's rules cannot enforce (each named in a warning) instead of refusing")
    .action(async (dir: string, flags: ImportFlags & ConfigFlags) => {
      code = await withConfigErrors(io, () => importCommand(load(flags, io), dir, flags, io));
    });

  program
    .command('version')
    .description('print the version')
    .action(() => {
      io.out(version());
    });

  try {
    await program.parseAsync([...argv]);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end by "throwing" with status 0.
      return err.exitCode;
    }
    throw err;
  }
  return code;
}
