import { createHash } from 'node:crypto';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  brokerSink,
  CdcMetrics,
  CdcRunner,
  jsonLinesSink,
  readManifestStart,
  ReplicationClient,
  webhookSink,
  type CdcShardTarget,
  type CdcSink,
  type SlotReading,
} from '../cdc/index.js';
import { BYTE_SIZE_FORMS, byteSize } from '../config/byte-size.js';
import type { ShardName } from '../config/names.js';
import type { ShardGateConfig } from '../config/types.js';
import { sgError } from '../errors/catalogue.js';
import { natsJetStreamSink, rabbitMqSink } from '../messaging/index.js';
import { createLogger } from '../observe/logger.js';
import { quoteLiteral } from '../tx/gid.js';
import type { CliIo } from './cli-io.js';
import { reportError } from './report-error.js';

/** Flags of `shardgate cdc` (commander's camelCase names). */
export interface CdcFlags {
  readonly sink?: string;
  readonly subject?: string;
  readonly natsUrl?: string;
  readonly natsStream?: string;
  readonly amqpUrl?: string;
  readonly exchange?: string;
  readonly webhookUrl?: string;
  readonly webhookHeader?: readonly string[];
  readonly fromManifest?: string;
  readonly slotPrefix?: string;
  readonly publication?: string;
  readonly metricsListen?: string;
  readonly memoryLimit?: string;
  readonly spillDir?: string;
  readonly maxMessageBytes?: string;
  readonly maxWaitingParts?: string;
}

export const CDC_DEFAULTS = {
  sink: 'stdout',
  subject: 'shardgate.cdc',
  natsUrl: 'nats://127.0.0.1:4222',
  natsStream: 'SHARDGATE_CDC',
  amqpUrl: 'amqp://guest:guest@127.0.0.1:5672',
  slotPrefix: 'shardgate_cdc_',
  publication: 'shardgate_cdc',
  memoryLimit: '64MiB',
  maxWaitingParts: 10_000,
  // RabbitMQ 3.8–3.13's default max_message_size (4.0 lowered it to 16 MiB).
  maxMessageBytes: '128MiB',
} as const;

/** `67108864`, `64MiB`, `100 MB` → bytes; anything else is refused naming the option. */
export function parseByteSize(option: string, text: string): number {
  const bytes = byteSize(text);
  if (bytes === null) throw sgError('cdcOption', { option, reason: `${JSON.stringify(text)} is not a size: ${BYTE_SIZE_FORMS}` });
  return bytes;
}

/** A whole number of at least 1; anything else is refused naming the option. */
function parseCount(option: string, text: string): number {
  const n = /^\s*\d+\s*$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw sgError('cdcOption', { option, reason: `${JSON.stringify(text)} is not a whole number of at least 1` });
  return n;
}

/** Refuses, naming the option, a folder that cannot be created or written (else every attempt would fail on it). */
function usableDir(option: string, dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw sgError('cdcOption', { option, reason: `cannot write to ${dir}: ${(err as Error).message}` });
  }
}

/** The spill folder: the flag's, else the file's `cdc.spillDir`, else one per set of slots (one process streams from a slot at a time, so it is this process's alone). */
function spillDir(config: ShardGateConfig, flags: CdcFlags, shards: readonly CdcShardTarget[]): string {
  if (flags.spillDir !== undefined) return flags.spillDir;
  if (config.cdc?.spillDir != null) return config.cdc.spillDir;
  const key = createHash('sha256').update(shards.map((s) => `${s.url}\u0000${s.slot}`).join('\u0000')).digest('hex').slice(0, 16);
  return join(tmpdir(), `shardgate-cdc-spill-${key}`);
}

const SLOT_NAME = /^[a-z0-9_]{1,63}$/;

/** The slot and publication of every shard: from the manifest when starting from an export, else by name. */
async function targets(config: ShardGateConfig, flags: CdcFlags): Promise<{ shards: CdcShardTarget[]; skip?: (shard: string, xid: number) => boolean; cutId?: string }> {
  const servers = config.shards.map((s) => {
    if (s.kind !== 'postgres') throw sgError('cdcNeedsServer', { shard: s.name });
    return s;
  });
  if (flags.fromManifest !== undefined) {
    const start = await readManifestStart(flags.fromManifest, servers.map((s) => s.name));
    const shards = servers.map((s) => ({ name: s.name, url: s.url, ...start.shards.get(s.name)! }));
    return { shards, skip: start.skip, cutId: start.cutId };
  }
  const prefix = flags.slotPrefix ?? CDC_DEFAULTS.slotPrefix;
  const publication = flags.publication ?? CDC_DEFAULTS.publication;
  const shards = servers.map((s) => ({ name: s.name, url: s.url, slot: `${prefix}${s.name.toLowerCase()}`, publication }));
  const bad = shards.find((t) => !SLOT_NAME.test(t.slot));
  if (bad !== undefined) throw sgError('cdcOption', { option: '--slot-prefix', reason: `slot name ${JSON.stringify(bad.slot)} is not 1-63 lower-case letters, digits or underscores` });
  const names = new Set(shards.map((t) => t.slot));
  if (names.size < shards.length) throw sgError('cdcOption', { option: '--slot-prefix', reason: 'two shards differ only in letter case, so their slot names collide' });
  return { shards };
}

/** The sink the flags ask for, connected. */
async function openSink(flags: CdcFlags): Promise<CdcSink> {
  const subject = flags.subject ?? CDC_DEFAULTS.subject;
  switch (flags.sink ?? CDC_DEFAULTS.sink) {
    case 'stdout':
      return jsonLinesSink(process.stdout);
    case 'nats': {
      const { connect } = await import('nats');
      const nc = await connect({ servers: flags.natsUrl ?? CDC_DEFAULTS.natsUrl, name: 'shardgate-cdc' });
      const jsm = await nc.jetstreamManager();
      const stream = flags.natsStream ?? CDC_DEFAULTS.natsStream;
      // The stream is created when missing (its duplicate window drops repeats by event id); an existing one is used as it is.
      await jsm.streams.info(stream).catch(() => jsm.streams.add({ name: stream, subjects: [subject] }));
      // The server's max_payload (1 MiB unless configured): a larger message would be refused.
      const limit = { bytes: nc.info?.max_payload ?? 1024 * 1024, setting: 'the NATS server\'s max_payload' };
      return brokerSink('nats', natsJetStreamSink(nc.jetstream()), subject, limit, () => nc.drain());
    }
    case 'rabbitmq': {
      const amqp = await import('amqplib');
      const conn = await amqp.connect(flags.amqpUrl ?? CDC_DEFAULTS.amqpUrl);
      const channel = await conn.createConfirmChannel();
      const exchange = flags.exchange ?? '';
      // On the default exchange the routing key names the queue: make sure it exists and survives a broker restart.
      if (exchange === '') await channel.assertQueue(subject, { durable: true });
      const limit = { bytes: parseByteSize('--max-message-bytes', flags.maxMessageBytes ?? CDC_DEFAULTS.maxMessageBytes), setting: "--max-message-bytes, RabbitMQ's max_message_size" };
      return brokerSink('rabbitmq', rabbitMqSink(channel, exchange), subject, limit, async () => {
        await channel.close().catch(() => undefined);
        await conn.close().catch(() => undefined);
      });
    }
    case 'webhook': {
      if (flags.webhookUrl === undefined) throw sgError('cdcOption', { option: '--sink webhook', reason: 'no --webhook-url given' });
      const headers: Record<string, string> = {};
      for (const h of flags.webhookHeader ?? []) {
        const at = h.indexOf(':');
        if (at <= 0) throw sgError('cdcOption', { option: '--webhook-header', reason: `${JSON.stringify(h.slice(0, 40))} is not "Name: value"` });
        headers[h.slice(0, at).trim()] = h.slice(at + 1).trim();
      }
      return webhookSink(flags.webhookUrl, { headers });
    }
    default:
      throw sgError('cdcOption', { option: '--sink', reason: `unknown sink ${JSON.stringify(flags.sink)}; use stdout, nats, rabbitmq or webhook` });
  }
}

/** Reads each slot's retained WAL over ordinary (not walsender) sessions, opened on first use and reopened after an error. */
function slotReader(shards: readonly CdcShardTarget[]): { read: () => Promise<readonly SlotReading[]>; close: () => Promise<void> } {
  const sessions = new Map<string, ReplicationClient>();
  const readOne = async (t: CdcShardTarget): Promise<SlotReading> => {
    try {
      let c = sessions.get(t.name);
      if (c === undefined) {
        c = await ReplicationClient.connect(t.name as ShardName, t.url, { walsender: false });
        sessions.set(t.name, c);
      }
      const rows = await c.command(
        `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint::text, active::text FROM pg_replication_slots WHERE slot_name = ${quoteLiteral(t.slot)}`,
      );
      const row = rows[0];
      return { shard: t.name, slot: t.slot, retainedBytes: row?.[0] == null ? null : Number(row[0]), active: row?.[1] === 'true' };
    } catch {
      await sessions.get(t.name)?.close().catch(() => undefined);
      sessions.delete(t.name);
      return { shard: t.name, slot: t.slot, retainedBytes: null, active: false };
    }
  };
  return {
    read: () => Promise.all(shards.map(readOne)),
    close: async () => {
      await Promise.all([...sessions.values()].map((c) => c.close().catch(() => undefined)));
    },
  };
}

function serveMetrics(metrics: CdcMetrics, listen: string): Promise<Server> {
  const at = listen.lastIndexOf(':');
  const host = listen.slice(0, at).replace(/^\[|\]$/g, '');
  const port = Number(listen.slice(at + 1));
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    metrics.text().then(
      (text) => res.writeHead(200, { 'content-type': CdcMetrics.contentType }).end(text),
      () => res.writeHead(500).end(),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

/**
 * `shardgate cdc`: streams every shard's changes, whole transactions as the
 * application committed them, to the sink until SIGINT/SIGTERM (src/cdc/README.md).
 * Exit 0 after a clean stop, 1 when it could not start.
 */
export async function cdc(config: ShardGateConfig, flags: CdcFlags, io: CliIo): Promise<number> {
  const log = createLogger({ base: { component: 'cdc' }, env: io.env });
  let start: Awaited<ReturnType<typeof targets>>;
  let sink: CdcSink;
  let memoryLimit: number;
  let maxWaitingParts: number;
  let spill: string;
  try {
    // A flag wins over the file's key (already validated with its key path), which wins over the default.
    memoryLimit = flags.memoryLimit !== undefined ? parseByteSize('--memory-limit', flags.memoryLimit) : (config.cdc?.memoryLimit ?? parseByteSize('--memory-limit', CDC_DEFAULTS.memoryLimit));
    maxWaitingParts = flags.maxWaitingParts !== undefined ? parseCount('--max-waiting-parts', flags.maxWaitingParts) : (config.cdc?.maxWaitingParts ?? CDC_DEFAULTS.maxWaitingParts);
    start = await targets(config, flags);
    spill = spillDir(config, flags, start.shards);
    usableDir('--spill-dir', spill);
    sink = await openSink(flags);
  } catch (err) {
    return reportError(io, 'cdc', err);
  }
  const slots = slotReader(start.shards);
  const metrics = new CdcMetrics(slots.read);
  let server: Server | null = null;
  try {
    if (flags.metricsListen !== undefined) server = await serveMetrics(metrics, flags.metricsListen);
    const runner = new CdcRunner({
      shards: start.shards,
      sink,
      spill: { dir: spill, memoryLimit },
      maxWaitingParts,
      ...(start.skip !== undefined ? { skip: start.skip } : {}),
      log: (level, msg, fields) => log[level](fields ?? {}, msg),
      metrics,
    });
    const stop = new AbortController();
    void io.onShutdownSignal().then(() => stop.abort());
    log.info({ sink: sink.name, shards: start.shards.map((s) => s.name), ...(start.cutId !== undefined ? { fromCut: start.cutId } : {}) }, 'change data capture starting');
    await runner.run(stop.signal);
    return 0;
  } catch (err) {
    return reportError(io, 'cdc', err);
  } finally {
    server?.close();
    await sink.close().catch(() => undefined);
    await slots.close();
  }
}
