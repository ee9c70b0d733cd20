import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { byteSize } from './byte-size.js';
import { ConfigError, formatPath, type ConfigIssue } from './config-error.js';
import { configErrorMap, toConfigIssues } from './issues.js';
import { shardName, tableName, type ShardName, type TableName } from './names.js';
import { configSchema, type ParsedConfig, type TableRuleConfig } from './schema.js';
import { absoluteShardUrl, shardTlsSettings, type ShardTlsSettings } from './shard-url.js';
import type { RelayConfig, ShardGateConfig, ShardSpec, TableRule } from './types.js';

/** Where relative paths in a configuration are resolved from. */
export interface ParseOptions {
  /** Folder that embedded shard folders are relative to: the config file's folder. Default: the working directory. */
  readonly baseDir?: string;
}

/** A host and port as written in `listen` / `admin`; IPv6 hosts without brackets. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Splits `host:port` or `[v6]:port`. The schema has already checked the shape. */
export function parseHostPort(text: string): HostPort {
  const colon = text.lastIndexOf(':');
  let host = text.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host, port: Number(text.slice(colon + 1)) };
}

/** True for addresses only this machine can reach: 127.0.0.0/8, ::1 and localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === '::1' || h === 'localhost';
}

function checkPort(issues: ConfigIssue[], key: string, text: string | undefined): void {
  if (text === undefined) return;
  const { port } = parseHostPort(text);
  if (port > 65_535) issues.push({ path: key, message: `port ${port} is out of range (0-65535)` });
}

function checkShards(cfg: ParsedConfig, baseDir: string, issues: ConfigIssue[]): void {
  const names = Object.keys(cfg.shards);
  if (names.length === 0) issues.push({ path: 'shards', message: 'expected at least one shard' });
  const seenUrl = new Map<string, string>();
  const seenDir = new Map<string, string>();
  for (const name of names) {
    const path = formatPath(['shards', name]);
    // Integer-like keys would be reordered by JavaScript objects, and shard order decides where rows live.
    if (!/^[A-Za-z]/.test(name)) issues.push({ path, message: 'a shard name must start with a letter' });
    const spec = cfg.shards[name]!;
    if (typeof spec === 'string') {
      try {
        const url = new URL(spec);
        if (url.hostname === '') issues.push({ path, message: 'expected a postgres:// URL with a host' });
        checkShardTls(url, baseDir, path, issues);
      } catch {
        issues.push({ path, message: 'expected a valid postgres:// URL' });
      }
      const other = seenUrl.get(spec);
      if (other !== undefined) issues.push({ path, message: `same database as shards.${other}` });
      seenUrl.set(spec, name);
    } else {
      const dir = resolve(baseDir, spec.embedded);
      const other = seenDir.get(dir);
      if (other !== undefined) issues.push({ path: `${path}.embedded`, message: `same folder as shards.${other}` });
      seenDir.set(dir, name);
    }
  }
  if (cfg.defaultShard !== undefined && names.length > 0 && !names.includes(cfg.defaultShard)) {
    issues.push({ path: 'defaultShard', message: `unknown shard "${cfg.defaultShard}" (shards: ${names.join(', ')})` });
  }
}

function checkShardTls(url: URL, baseDir: string, path: string, issues: ConfigIssue[]): void {
  let settings: ShardTlsSettings;
  try {
    settings = shardTlsSettings(url.searchParams);
  } catch (err) {
    issues.push({ path, message: (err as Error).message });
    return;
  }
  const files: [string, string | null][] = [
    ['sslrootcert', settings.rootCert === 'system' ? null : settings.rootCert],
    ['sslcert', settings.cert],
    ['sslkey', settings.key],
  ];
  for (const [name, file] of files) {
    if (file !== null && !existsSync(resolve(baseDir, file))) issues.push({ path, message: `${name} file ${resolve(baseDir, file)} does not exist` });
  }
}

function checkTables(cfg: ParsedConfig, issues: ConfigIssue[]): void {
  const shardNames = Object.keys(cfg.shards);
  for (const [table, rule] of Object.entries(cfg.tables)) {
    const base = ['tables', table];
    if (!/^[^\s."]+$/.test(table)) {
      issues.push({ path: formatPath(base), message: 'expected an unqualified table name (no schema, dots, quotes or spaces)' });
    }
    if (!('algorithm' in rule) || rule.algorithm !== 'range') continue;
    const ranges = rule.ranges;
    const kinds = new Set<string>();
    let previous: number | undefined;
    ranges.forEach((entry, i) => {
      const at = [...base, 'ranges', i];
      if (!shardNames.includes(entry.shard)) {
        issues.push({ path: formatPath([...at, 'shard']), message: `unknown shard "${entry.shard}" (shards: ${shardNames.join(', ')})` });
      }
      if (entry.below === undefined) {
        if (i !== ranges.length - 1) issues.push({ path: formatPath(at), message: 'an entry without "below" catches every remaining value and must be the last' });
        return;
      }
      kinds.add(typeof entry.below);
      if (typeof entry.below === 'number') {
        // First matching entry wins, so a bound not above the previous one could never match.
        if (previous !== undefined && entry.below <= previous) {
          issues.push({ path: formatPath([...at, 'below']), message: `expected a bound above the previous one (${previous})` });
        }
        previous = entry.below;
      }
    });
    if (ranges.length > 0 && ranges[ranges.length - 1]!.below !== undefined) {
      issues.push({ path: formatPath([...base, 'ranges']), message: 'expected a last entry without "below" that catches every remaining value, for example { shard: s0 }' });
    }
    if (kinds.size > 1) issues.push({ path: formatPath([...base, 'ranges']), message: 'expected every "below" to be of one type: all numbers or all strings' });
  }
}

function checkAuth(cfg: ParsedConfig, issues: ConfigIssue[]): void {
  const seen = new Set<string>();
  cfg.auth.users.forEach((u, i) => {
    if (seen.has(u.name)) issues.push({ path: formatPath(['auth', 'users', i, 'name']), message: `duplicate user "${u.name}"` });
    seen.add(u.name);
  });
  if (cfg.auth.trust && !isLoopbackHost(parseHostPort(cfg.listen).host)) {
    issues.push({
      path: 'auth.trust',
      message: `trust (no password) is refused on ${cfg.listen}: listen on a loopback address (127.0.0.1, ::1, localhost) or list users with passwords`,
    });
  }
  if (cfg.admin !== undefined && cfg.adminToken === undefined && !isLoopbackHost(parseHostPort(cfg.admin).host)) {
    issues.push({ path: 'adminToken', message: `required when admin listens on a non-loopback address (${cfg.admin})` });
  }
}

function toTableRule(rule: TableRuleConfig): TableRule {
  if ('broadcast' in rule) return { kind: 'broadcast' };
  if (rule.algorithm === 'range') {
    return {
      kind: 'range',
      key: rule.key,
      ranges: rule.ranges.map((r) => (r.below === undefined ? { shard: shardName(r.shard) } : { below: r.below, shard: shardName(r.shard) })),
    };
  }
  return { kind: rule.algorithm, key: rule.key };
}

/** The brokers' URLs when `saga.relay.sink.url` is not given: the ones running beside ShardGate by default. */
const DEFAULT_BROKER_URLS = { nats: 'nats://127.0.0.1:4222', rabbitmq: 'amqp://guest:guest@127.0.0.1:5672' } as const;

function toRelayConfig(relay: NonNullable<NonNullable<ParsedConfig['saga']>['relay']>): RelayConfig {
  const { sink, backCheck: b } = relay;
  const url = sink.url ?? DEFAULT_BROKER_URLS[sink.kind];
  return {
    sink: sink.kind === 'nats' ? { kind: 'nats', url, stream: sink.stream ?? null } : { kind: 'rabbitmq', url, exchange: sink.exchange ?? '' },
    intervalMs: relay.intervalMs,
    batchSize: relay.batchSize,
    backCheck:
      b === undefined
        ? null
        : b.url !== undefined
          ? { kind: 'http', url: b.url, afterMs: b.afterMs, intervalMs: b.intervalMs }
          : { kind: 'database', database: b.database!, schema: b.schema ?? null, afterMs: b.afterMs, intervalMs: b.intervalMs },
  };
}

function toSagaConfig(saga: NonNullable<ParsedConfig['saga']>): NonNullable<ShardGateConfig['saga']> {
  const { relay, ...rest } = saga;
  return { ...rest, ...(relay !== undefined ? { relay: toRelayConfig(relay) } : {}) };
}

function toShardSpec(name: string, spec: ParsedConfig['shards'][string], baseDir: string): ShardSpec {
  return typeof spec === 'string'
    ? { kind: 'postgres', name: shardName(name), url: absoluteShardUrl(spec, baseDir) }
    : { kind: 'embedded', name: shardName(name), dir: resolve(baseDir, spec.embedded) };
}

/**
 * Validates a raw configuration (as read from YAML) and returns the
 * configuration every layer works from. Throws `ConfigError` listing every
 * problem, each located by key path (`tables.orders.key: expected a column
 * name`). Guarantees: at least one shard, shards in listed order, a
 * `defaultShard` that exists (the first shard unless set), range rules whose
 * shards exist and that end in exactly one catch-all entry, unique user names,
 * `auth.trust` only on a loopback listen address, `admin` null when omitted.
 * Whether anyone can log in is the server's concern: the library needs no users.
 */
export function parseConfig(raw: unknown, opts: ParseOptions = {}): ShardGateConfig {
  const baseDir = resolve(opts.baseDir ?? process.cwd());
  if (raw === null || raw === undefined || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError([{ path: '(document)', message: `expected a mapping of configuration keys, got ${raw === null || raw === undefined ? 'nothing' : Array.isArray(raw) ? 'a list' : typeof raw}` }]);
  }
  const result = configSchema.safeParse(raw, { error: configErrorMap });
  if (!result.success) throw new ConfigError(toConfigIssues(result.error.issues, raw));
  const cfg = result.data;

  const issues: ConfigIssue[] = [];
  checkPort(issues, 'listen', cfg.listen);
  checkPort(issues, 'admin', cfg.admin);
  checkShards(cfg, baseDir, issues);
  checkTables(cfg, issues);
  checkAuth(cfg, issues);
  if (issues.length > 0) throw new ConfigError(issues);

  const shards = Object.entries(cfg.shards).map(([name, spec]) => toShardSpec(name, spec, baseDir));
  const tables = new Map<TableName, TableRule>();
  for (const [name, rule] of Object.entries(cfg.tables)) tables.set(tableName(name), toTableRule(rule));
  const defaultShard: ShardName = cfg.defaultShard !== undefined ? shardName(cfg.defaultShard) : shards[0]!.name;

  return {
    listen: parseHostPort(cfg.listen),
    admin: cfg.admin === undefined ? null : parseHostPort(cfg.admin),
    adminToken: cfg.adminToken ?? null,
    database: cfg.database,
    auth: { users: cfg.auth.users.map((u) => ({ name: u.name, password: u.password })), trust: cfg.auth.trust },
    coordinatorId: cfg.coordinatorId,
    shards,
    defaultShard,
    pool: { ...cfg.pool },
    transactions: { ...cfg.transactions },
    slowStatementMs: cfg.slowStatementMs ?? null,
    saga: cfg.saga === undefined ? null : toSagaConfig(cfg.saga),
    cdc:
      cfg.cdc === undefined
        ? null
        : {
            memoryLimit: cfg.cdc.memoryLimit === undefined ? null : byteSize(cfg.cdc.memoryLimit),
            spillDir: cfg.cdc.spillDir === undefined ? null : resolve(baseDir, cfg.cdc.spillDir),
            maxWaitingParts: cfg.cdc.maxWaitingParts ?? null,
          },
    tls: cfg.tls === undefined ? null : { cert: resolve(baseDir, cfg.tls.cert), key: resolve(baseDir, cfg.tls.key), required: cfg.tls.required },
    tables,
  };
}
