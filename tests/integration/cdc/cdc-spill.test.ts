import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { exited, startCdc, type CdcProcess } from '../../harness/cdc.js';
import { freePort } from '../../harness/cluster.js';
import { startShardedSetup, type ShardedSetup } from '../../harness/proxy.js';
import { commitDecisionSql } from '../../../src/tx/decision.js';

/**
 * Large transactions under a small --memory-limit: their changes go to spill
 * files while they are read and wait, and come out as one event each, exactly
 * the source rows in order; the files are gone once the sink took the event
 * or the transaction rolled back; a crash with spilled transactions pending
 * loses nothing and emits nothing in part. The shards decode with
 * logical_decoding_work_mem at its minimum, so the server streams these
 * transactions before they commit (Stream Start/Stop/Commit/Abort/Prepare).
 */
interface EventJson {
  readonly id: string;
  readonly kind: 'local' | 'global';
  readonly shards: string[];
  readonly changes: { table: string; op: string; new: Record<string, string> | null }[];
}

const LIMIT = '1MiB';

/** Event lines in arrival order, and a wait for one that matches. */
class Events {
  readonly all: EventJson[] = [];
  readonly texts: string[] = [];
  #waiters: { match: (e: EventJson) => boolean; resolve: (e: EventJson) => void }[] = [];

  add(text: string): void {
    const e = JSON.parse(text) as EventJson;
    this.all.push(e);
    this.texts.push(text);
    this.#waiters = this.#waiters.filter((w) => (w.match(e) ? (w.resolve(e), false) : true));
  }

  next(match: (e: EventJson) => boolean): Promise<EventJson> {
    const seen = this.all.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }
}

/** Names of the spill files created in `dir` since the watch began; `atLeast(n)` resolves once n were seen. */
function watchSpills(dir: string): { readonly created: Set<string>; readonly watcher: FSWatcher; atLeast(n: number): Promise<void> } {
  const created = new Set<string>();
  const waiters: { n: number; resolve: () => void }[] = [];
  const watcher = watch(dir, (_event, name) => {
    if (name === null || !name.endsWith('.spill')) return;
    created.add(name);
    for (const w of waiters.filter((x) => created.size >= x.n)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  });
  const atLeast = (n: number): Promise<void> => (created.size >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve })));
  return { created, watcher, atLeast };
}

/**
 * A webhook that holds every request unanswered until `release()`: the events
 * wait, unacknowledged. Released, it destroys the held requests (the sink
 * sends them again) and takes every later one into `events`.
 */
async function holdingWebhook(events: Events): Promise<{ readonly url: string; release(): void; close(): void }> {
  let answer = false;
  const held: ServerResponse[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.on('error', () => undefined);
    if (!answer) {
      held.push(res);
      return;
    }
    const body: Buffer[] = [];
    req.on('data', (d: Buffer) => body.push(d));
    req.on('end', () => {
      for (const e of JSON.parse(Buffer.concat(body).toString('utf8')) as unknown[]) events.add(JSON.stringify(e));
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`,
    release() {
      answer = true;
      for (const res of held) res.destroy();
    },
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}

const ids = (e: EventJson): number[] => e.changes.map((c) => Number(c.new!.id));
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('shardgate cdc spills large transactions', () => {
  let setup: ShardedSetup;
  let app: pg.Client;
  const shard: pg.Client[] = [];
  const children: CdcProcess[] = [];
  const dirs: string[] = [];
  let marker = 0;

  beforeAll(async () => {
    setup = await startShardedSetup(2, { big: { key: 'id' } });
    for (const c of setup.clusters) {
      // The smallest the server allows: every transaction here is streamed to the slot before it ends.
      await c.query("ALTER SYSTEM SET logical_decoding_work_mem = '64kB'");
      await c.query('SELECT pg_reload_conf()');
    }
    app = new pg.Client({ connectionString: setup.proxy.url });
    await app.connect();
    await app.query('CREATE TABLE big (id int PRIMARY KEY, pad text NOT NULL)');
    for (const c of setup.clusters) {
      const client = new pg.Client({ connectionString: c.url('app') });
      await client.connect();
      shard.push(client);
    }
  }, 120_000);
  afterAll(async () => {
    for (const c of children) await c.kill9();
    await app?.end();
    for (const c of shard) await c.end();
    await setup?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  const newDir = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'sg-cdc-spill-'));
    dirs.push(d);
    return d;
  };
  const prefix = (): string => `t${randomBytes(4).toString('hex')}_`;

  /** A one-row transaction on shard 0 and its event: every event before it has been acknowledged by the sink once it arrives. */
  async function markerEvent(events: Events): Promise<void> {
    const id = 9_000_000 + ++marker;
    await shard[0]!.query("INSERT INTO big VALUES ($1, 'marker')", [id]);
    await events.next((e) => e.changes.some((c) => c.new?.id === String(id)));
  }

  /** The ids of `lo..hi` on each shard, in the order the shard holds them. */
  async function idsByShard(lo: number, hi: number): Promise<number[][]> {
    return Promise.all(shard.map(async (c) => (await c.query<{ id: number }>('SELECT id FROM big WHERE id BETWEEN $1 AND $2 ORDER BY id', [lo, hi])).rows.map((r) => r.id)));
  }

  /** A global event holds exactly the rows of `lo..hi`: the anchor's part first, then the other shard's, each in insertion (id) order. */
  async function expectWholeGlobal(e: EventJson, lo: number, hi: number): Promise<void> {
    const byShard = await idsByShard(lo, hi);
    expect(e.kind).toBe('global');
    expect(byShard.every((part) => part.length > 0)).toBe(true);
    const expected = e.shards.flatMap((s) => byShard[Number(s.slice(1))]!);
    expect(ids(e)).toEqual(expected);
    expect([...expected].sort((a, b) => a - b)).toEqual(range(lo, hi));
  }

  it(
    'a 200 000-row transaction and a cross-shard one with big parts on both shards: one event each, exactly the rows in order, files only meanwhile',
    { timeout: 240_000 },
    async () => {
      const dir = newDir();
      const events = new Events();
      const slots = prefix();
      const cdc = startCdc(setup.proxy.configFile, ['--memory-limit', LIMIT, '--spill-dir', dir, '--slot-prefix', slots], (l) => events.add(l));
      children.push(cdc);
      await cdc.streaming;
      const spills = watchSpills(dir);
      try {
        await shard[0]!.query("INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 200000) g");
        const local = await events.next((e) => e.changes.some((c) => c.new?.id === '1'));
        expect(local.kind).toBe('local');
        expect(local.id).toMatch(/^s0:/);
        expect(ids(local)).toEqual(range(1, 200_000));
        expect(local.changes.every((c) => c.table === 'public.big' && c.op === 'insert' && c.new!.pad === 'x'.repeat(100))).toBe(true);
        expect(spills.created.size).toBeGreaterThan(0);

        const before = spills.created.size;
        await app.query("INSERT INTO big SELECT g, repeat('y', 100) FROM generate_series(1000001, 1060000) g");
        const global = await events.next((e) => e.changes.some((c) => c.new?.id === '1000001'));
        await expectWholeGlobal(global, 1_000_001, 1_060_000);
        // Both shards' parts were larger than the limit.
        expect(spills.created.size).toBeGreaterThanOrEqual(before + 2);

        await markerEvent(events);
        // One event per transaction, none repeated (a clean run), and the files are gone.
        expect(events.all.filter((e) => e.id === local.id || e.id === global.id)).toHaveLength(2);
        expect(readdirSync(dir)).toEqual([]);
        // The server did stream them before they committed.
        const [stats] = await setup.clusters[0]!.query<{ stream_txns: string }>(
          'SELECT stream_txns::text FROM pg_stat_replication_slots WHERE slot_name = $1',
          [`${slots}s0`],
        );
        expect(Number(stats?.stream_txns)).toBeGreaterThan(0);
      } finally {
        spills.watcher.close();
        await cdc.stop();
      }
    },
  );

  it(
    'two cross-shard transactions of 5000 rows per shard committed in opposite orders on the two shards: both events whole, nothing stalls, their row keys spilled',
    { timeout: 240_000 },
    async () => {
      const dir = newDir();
      const events = new Events();
      const cdc = startCdc(setup.proxy.configFile, ['--memory-limit', '128kB', '--spill-dir', dir, '--slot-prefix', prefix()], (l) => events.add(l));
      children.push(cdc);
      await cdc.streaming;
      const spills = watchSpills(dir);
      try {
        // Driven on the shards as ShardGate's commit protocol does, so that the test orders each shard's commits:
        // s1 prepares both branches; s0 commits G's anchor (its decision) then H's; s1 commits H's branch then G's.
        // Each part writes 5000 rows of table big, no row in common with the other transaction.
        const unique = randomBytes(4).toString('hex');
        const [G, H] = [`sg_cdcorder_s0_g${unique}`, `sg_cdcorder_s0_h${unique}`];
        const rows = (from: number, pad: string): string => `INSERT INTO big SELECT g, '${pad}' FROM generate_series(${from}, ${from + 4999}) g`;
        await shard[1]!.query(`BEGIN; ${rows(7_005_001, 'g')}; PREPARE TRANSACTION '${G}_s1'`);
        await shard[1]!.query(`BEGIN; ${rows(7_105_001, 'h')}; PREPARE TRANSACTION '${H}_s1'`);
        await shard[0]!.query(`BEGIN; ${rows(7_000_001, 'g')}; ${commitDecisionSql(G, ['s1'])}`);
        await shard[0]!.query(`BEGIN; ${rows(7_100_001, 'h')}; ${commitDecisionSql(H, ['s1'])}`);
        // Each COMMIT PREPARED is ours (it would fail with 42704 had recovery finished the branch first): the orders are as written.
        await shard[1]!.query(`COMMIT PREPARED '${H}_s1'`);
        await shard[1]!.query(`COMMIT PREPARED '${G}_s1'`);

        const g = await events.next((e) => e.id === G);
        const h = await events.next((e) => e.id === H);
        await expectWholeGlobal(g, 7_000_001, 7_010_000);
        await expectWholeGlobal(h, 7_100_001, 7_110_000);
        // Nothing behind them waits: a later transaction on each shard comes out.
        await markerEvent(events);
        const id = 9_200_000 + ++marker;
        await shard[1]!.query("INSERT INTO big VALUES ($1, 'marker')", [id]);
        await events.next((e) => e.changes.some((c) => c.new?.id === String(id)));
        expect(events.all.filter((e) => e.id === G || e.id === H)).toHaveLength(2);
        // Memory stayed within the limit by spilling the changes and the row keys of the large parts.
        expect([...spills.created].filter((f) => f.startsWith('keys-')).length).toBeGreaterThan(0);
        expect([...spills.created].filter((f) => f.startsWith('part-')).length).toBeGreaterThan(0);
        expect(readdirSync(dir)).toEqual([]);
      } finally {
        spills.watcher.close();
        await cdc.stop();
      }
    },
  );

  it('a spilled transaction that rolls back, streamed or prepared, leaves no event and no file', { timeout: 120_000 }, async () => {
    const dir = newDir();
    const events = new Events();
    const cdc = startCdc(setup.proxy.configFile, ['--memory-limit', LIMIT, '--spill-dir', dir, '--slot-prefix', prefix()], (l) => events.add(l));
    children.push(cdc);
    await cdc.streaming;
    const spills = watchSpills(dir);
    try {
      // Streamed, then Stream Abort. The rollback waits until the open transaction was streamed and spilled:
      // a walsender that reaches a transaction only after its abort record stops streaming it (a concurrent abort).
      await shard[0]!.query('BEGIN');
      await shard[0]!.query("INSERT INTO big SELECT g, repeat('r', 100) FROM generate_series(3000001, 3050000) g");
      await spills.atLeast(1);
      await shard[0]!.query('ROLLBACK');
      // Prepared (an application's own two-phase transaction; ShardGate's recovery leaves it alone), streamed,
      // Stream Prepare, then Rollback Prepared.
      const gid = `ext_${randomBytes(6).toString('hex')}`;
      await shard[1]!.query('BEGIN');
      await shard[1]!.query("INSERT INTO big SELECT g, repeat('p', 100) FROM generate_series(3100001, 3150000) g");
      await spills.atLeast(2);
      await shard[1]!.query(`PREPARE TRANSACTION '${gid}'`);
      await shard[1]!.query(`ROLLBACK PREPARED '${gid}'`);
      // Events are handed out in each shard's commit order: the markers come after the rollbacks were read.
      await markerEvent(events);
      const id = 9_100_000 + ++marker;
      await shard[1]!.query("INSERT INTO big VALUES ($1, 'marker')", [id]);
      await events.next((e) => e.changes.some((c) => c.new?.id === String(id)));
      expect(events.all.flatMap((e) => e.changes).filter((c) => c.new?.pad !== 'marker')).toEqual([]);
      // Both were held long enough to spill, and their files are gone.
      expect(spills.created.size).toBeGreaterThanOrEqual(2);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      spills.watcher.close();
      await cdc.stop();
    }
  });

  it('a crash with spilled transactions pending, then a restart: every event whole, duplicates only with their ids, the folder emptied', { timeout: 240_000 }, async () => {
    const dir = newDir();
    const slots = prefix();
    const events = new Events();
    const webhook = await holdingWebhook(events);
    const url = webhook.url;
    const args = ['--sink', 'webhook', '--webhook-url', url, '--memory-limit', LIMIT, '--spill-dir', dir, '--slot-prefix', slots];
    try {
      const first = startCdc(setup.proxy.configFile, args);
      children.push(first);
      await first.streaming;
      const spills = watchSpills(dir);
      await shard[0]!.query("INSERT INTO big VALUES (4000000, 'small')");
      await app.query("INSERT INTO big SELECT g, repeat('k', 100) FROM generate_series(4000001, 4040000) g");
      // The global transaction's parts are read and spilled while the sink holds the first event.
      await spills.atLeast(2);
      spills.watcher.close();
      await first.kill9();
      expect(readdirSync(dir).length).toBeGreaterThan(0);
      writeFileSync(join(dir, 'left-over.spill'), 'from the process that crashed');

      webhook.release();
      const second = startCdc(setup.proxy.configFile, args);
      children.push(second);
      await second.streaming;
      expect(readdirSync(dir)).not.toContain('left-over.spill');
      const global = await events.next((e) => e.changes.some((c) => c.new?.id === '4000001'));
      await expectWholeGlobal(global, 4_000_001, 4_040_000);
      const small = await events.next((e) => e.changes.some((c) => c.new?.id === '4000000'));
      expect(small.changes).toHaveLength(1);
      await markerEvent(events);
      // Every copy of an event is the same event: nothing was ever sent in part.
      const byId = new Map<string, string>();
      for (const [i, e] of events.all.entries()) {
        const seen = byId.get(e.id);
        if (seen !== undefined) expect(events.texts[i]).toBe(seen);
        byId.set(e.id, events.texts[i]!);
      }
      expect(readdirSync(dir)).toEqual([]);
      await second.stop();
    } finally {
      webhook.close();
    }
  });

  it(
    'held memory and spill files as the metrics report them: up while the sink holds the events, within the limit, back to 0 once it took them; the file gives the spill folder, the flag the limit',
    { timeout: 240_000 },
    async () => {
      const dir = newDir();
      // The file says 1 GiB, which would never spill here: the flag's 1 MiB wins. The file's spill folder is used.
      const configFile = join(newDir(), 'shardgate.yaml');
      writeFileSync(configFile, stringify({ ...setup.config, cdc: { memoryLimit: '1GiB', spillDir: dir } }));
      const events = new Events();
      const webhook = await holdingWebhook(events);
      const url = webhook.url;
      const metricsPort = await freePort();
      const cdc = startCdc(configFile, ['--sink', 'webhook', '--webhook-url', url, '--memory-limit', LIMIT, '--slot-prefix', prefix(), '--metrics-listen', `127.0.0.1:${metricsPort}`]);
      children.push(cdc);
      const gauges = async (): Promise<{ bytes: number; files: number }> => {
        const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
        const value = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
        return { bytes: value('shardgate_cdc_held_memory_bytes'), files: value('shardgate_cdc_spill_files') };
      };
      /** Scrapes until `done` holds (the gauges are set once a second); every sample seen is kept. */
      const samples: { bytes: number; files: number }[] = [];
      const until = async (done: (g: { bytes: number; files: number }) => boolean): Promise<{ bytes: number; files: number }> => {
        for (;;) {
          const g = await gauges();
          samples.push(g);
          if (done(g)) return g;
          await new Promise((r) => setTimeout(r, 100));
        }
      };
      try {
        await cdc.streaming;
        expect(await until((g) => !Number.isNaN(g.bytes))).toEqual({ bytes: 0, files: 0 });
        // A small transaction the sink holds: in memory, no file.
        await shard[0]!.query("INSERT INTO big SELECT g, repeat('h', 100) FROM generate_series(6000001, 6000500) g");
        const small = await until((g) => g.bytes > 0);
        expect(small.files).toBe(0);
        // 500 changes of about 150 bytes of JSON each (+ 64 bytes counted per change).
        expect(small.bytes).toBeGreaterThan(500 * 150);
        // A large one behind it: over the limit, so it spills, into the file's folder; what stays in memory is within the limit.
        await app.query("INSERT INTO big SELECT g, repeat('s', 100) FROM generate_series(6100001, 6140000) g");
        const spilled = await until((g) => g.files > 0);
        expect(readdirSync(dir).some((f) => f.endsWith('.spill'))).toBe(true);
        expect(Math.max(...samples.map((g) => g.bytes).filter((b) => !Number.isNaN(b)))).toBeLessThanOrEqual(1024 * 1024);
        expect(spilled.bytes).toBeLessThanOrEqual(1024 * 1024);
        // The sink takes everything: nothing held, no file.
        webhook.release();
        const global = await events.next((e) => e.changes.some((c) => c.new?.id === '6100001'));
        await expectWholeGlobal(global, 6_100_001, 6_140_000);
        await markerEvent(events);
        expect(await until((g) => g.files === 0 && g.bytes === 0)).toEqual({ bytes: 0, files: 0 });
        expect(readdirSync(dir)).toEqual([]);
        expect(await cdc.stop(), cdc.logs()).toBe(0);
      } finally {
        webhook.close();
      }

    },
  );

  it('a transaction larger than a NATS message may be stops the command with an error naming the limit, and is not lost', { timeout: 120_000 }, async () => {
    const run = randomBytes(4).toString('hex');
    const slots = prefix();
    const dir = newDir();
    const nats = startCdc(setup.proxy.configFile, ['--sink', 'nats', '--subject', `sg.cdc.${run}`, '--nats-stream', `SG_CDC_${run}`, '--memory-limit', LIMIT, '--spill-dir', dir, '--slot-prefix', slots]);
    children.push(nats);
    await nats.streaming;
    // About 3 MB of JSON, above the server's default max_payload of 1 MiB.
    await app.query("INSERT INTO big SELECT g, repeat('n', 100) FROM generate_series(5000001, 5020000) g");
    expect(await exited(nats.child)).toBe(1);
    expect(nats.logs()).toMatch(/transaction sg_\S+ \(20000 changes\) is larger than one nats message may be: \d+ bytes \(the NATS server's max_payload\)/);
    // The slots were not confirmed past it: a streaming sink gets it whole.
    const events = new Events();
    const stdout = startCdc(setup.proxy.configFile, ['--memory-limit', LIMIT, '--spill-dir', dir, '--slot-prefix', slots], (l) => events.add(l));
    children.push(stdout);
    await stdout.streaming;
    const e = await events.next((x) => x.changes.some((c) => c.new?.id === '5000001'));
    await expectWholeGlobal(e, 5_000_001, 5_020_000);
    await stdout.stop();
  });

  it('refuses a memory limit that is not a size, and a spill folder it cannot write, with a message and exit 1', async () => {
    const size = startCdc(setup.proxy.configFile, ['--memory-limit', 'lots']);
    expect(await exited(size.child)).toBe(1);
    expect(size.logs()).toContain('shardgate cdc --memory-limit: "lots" is not a size');
    const file = join(newDir(), 'a-file');
    writeFileSync(file, '');
    const dir = startCdc(setup.proxy.configFile, ['--spill-dir', join(file, 'spill')]);
    expect(await exited(dir.child)).toBe(1);
    expect(dir.logs()).toContain(`shardgate cdc --spill-dir: cannot write to ${join(file, 'spill')}`);
  });
});
