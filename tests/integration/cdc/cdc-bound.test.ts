import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startCdc, type CdcProcess } from '../../harness/cdc.js';
import { freePort } from '../../harness/cluster.js';
import { startShardedSetup, type ShardedSetup } from '../../harness/proxy.js';

/**
 * The bound on waiting parts: shard s1's walsender session runs through a
 * TCP link the test can hold (nothing it sends reaches the CDC process, so
 * s1 lags), while transfers across s0 and s1 and updates on s0 alone commit.
 * s0's parts wait behind the first transfer, whose s1 part does not come;
 * once `maxWaitingParts` (from the file's `cdc:` section) wait, s0 stops
 * being read, and its count stays there however many more transactions
 * commit. Released, every transaction comes out whole, each row's changes
 * in the order its shard committed them, s0's local transactions in s0's
 * commit order.
 */
interface Change {
  readonly table: string;
  readonly op: string;
  readonly new: Record<string, string> | null;
}
interface EventJson {
  readonly id: string;
  readonly kind: 'local' | 'global';
  readonly shards: string[];
  readonly changes: Change[];
}

const BOUND = 50;
const TRANSFERS = 300;
const LOCALS_PER_TRANSFER = 3;

/** A TCP link to `port` whose connections open at `hold()` stop passing what the server sends until `release()`. */
class HeldLink {
  readonly #server: Server;
  readonly #pairs: { client: Socket; upstream: Socket }[] = [];
  #held: { client: Socket; upstream: Socket }[] = [];

  private constructor(server: Server) {
    this.#server = server;
  }

  static async open(port: number): Promise<HeldLink> {
    const server = createServer();
    const link = new HeldLink(server);
    server.on('connection', (client) => {
      const upstream = createConnection({ host: '127.0.0.1', port });
      const end = (): void => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
      client.pipe(upstream);
      upstream.pipe(client);
      link.#pairs.push({ client, upstream });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return link;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** The server's bytes stop at this link (TCP back-pressure then stops the walsender); the client's still go through. */
  hold(): void {
    this.#held = this.#pairs.filter((p) => !p.client.destroyed);
    for (const p of this.#held) {
      p.upstream.unpipe(p.client);
      p.upstream.pause();
    }
  }

  release(): void {
    for (const p of this.#held) p.upstream.pipe(p.client);
    this.#held = [];
  }

  close(): void {
    for (const p of this.#pairs) {
      p.client.destroy();
      p.upstream.destroy();
    }
    this.#server.close();
  }
}

describe('shardgate cdc bounds the parts waiting for a lagging shard', () => {
  let setup: ShardedSetup;
  let app: pg.Client;
  const shard: pg.Client[] = [];
  let link: HeldLink;
  let cdc: CdcProcess | undefined;
  let dir: string;

  beforeAll(async () => {
    setup = await startShardedSetup(2, { account: { key: 'id' } });
    app = new pg.Client({ connectionString: setup.proxy.url });
    await app.connect();
    await app.query('CREATE TABLE account (id int PRIMARY KEY, balance int NOT NULL, v int NOT NULL)');
    await app.query('INSERT INTO account SELECT g, 1000, 0 FROM generate_series(1, 60) g');
    for (const c of setup.clusters) {
      const client = new pg.Client({ connectionString: c.url('app') });
      await client.connect();
      shard.push(client);
    }
    link = await HeldLink.open(setup.clusters[1]!.port);
    dir = mkdtempSync(join(tmpdir(), 'sg-cdc-bound-'));
  }, 120_000);
  afterAll(async () => {
    await cdc?.kill9();
    link?.close();
    await app?.end();
    for (const c of shard) await c.end();
    await setup?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it(
    'a shard ahead stops being read at the bound while the other is held back; released, every transaction comes out whole and in order',
    { timeout: 240_000 },
    async () => {
      const ids = await Promise.all(shard.map(async (c) => (await c.query<{ id: number }>('SELECT id FROM account ORDER BY id')).rows.map((r) => r.id)));
      const [on0, on1] = ids as [number[], number[]];
      expect(on0.length).toBeGreaterThan(5);
      expect(on1.length).toBeGreaterThan(5);

      // The CDC process reaches s1 through the link; the bound comes from the file's cdc section.
      const configFile = join(dir, 'shardgate.yaml');
      const shards = { ...(setup.config.shards as Record<string, string>), s1: `postgres://postgres@127.0.0.1:${link.port}/app` };
      writeFileSync(configFile, stringify({ ...setup.config, shards, cdc: { maxWaitingParts: BOUND } }));
      const events: EventJson[] = [];
      const seen = new Set<string>();
      let onEvent = (): void => undefined;
      const metricsPort = await freePort();
      cdc = startCdc(configFile, ['--slot-prefix', `t${randomBytes(4).toString('hex')}_`, '--metrics-listen', `127.0.0.1:${metricsPort}`], (line) => {
        const e = JSON.parse(line) as EventJson;
        events.push(e);
        for (const c of e.changes) if (c.new !== null) seen.add(`${c.new.id}:${c.new.v}`);
        onEvent();
      });
      const until = (done: () => boolean): Promise<void> =>
        new Promise((resolve) => {
          onEvent = () => {
            if (done()) resolve();
          };
          onEvent();
        });
      const scrape = async (): Promise<(name: string, s: string) => number> => {
        const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
        return (name, s) => Number(new RegExp(`^${name}\\{shard="${s}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
      };
      const gauge = async (name: string, s: string): Promise<number> => (await scrape())(name, s);
      await cdc.streaming;

      // One row written on each shard and seen: both streams are read past their start (the restart is settled).
      const touch = async (id: number): Promise<void> => {
        const { rows } = await app.query<{ v: number }>('UPDATE account SET v = v + 1 WHERE id = $1 RETURNING v', [id]);
        await until(() => seen.has(`${id}:${rows[0]!.v}`));
      };
      await touch(on0[0]!);
      await touch(on1[0]!);

      link.hold();
      // Scraped all along: the count of s0's waiting parts never passes the bound.
      let scraping = true;
      const samples: number[] = [];
      const scraper = (async () => {
        while (scraping) {
          samples.push(await gauge('shardgate_cdc_waiting_parts', 's0'));
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      for (let k = 0; k < TRANSFERS; k++) {
        const from = on0[k % on0.length]!;
        const to = on1[k % on1.length]!;
        const amount = (k % 7) + 1;
        await app.query('BEGIN');
        await app.query('UPDATE account SET balance = balance - $2, v = v + 1 WHERE id = $1', [from, amount]);
        await app.query('UPDATE account SET balance = balance + $2, v = v + 1 WHERE id = $1', [to, amount]);
        await app.query('COMMIT');
        for (let j = 0; j < LOCALS_PER_TRANSFER; j++) {
          await shard[0]!.query('UPDATE account SET balance = balance + 1, v = v + 1 WHERE id = $1', [on0[(k * 3 + j + 1) % on0.length]!]);
        }
      }
      // Every one of s0's parts is in its WAL, more than the bound; reading s0 has stopped at the bound.
      // (Without the bound it would read them all: the wait ends as soon as more than the bound wait, and fails.)
      let pausedAt = NaN;
      for (;;) {
        const now = await scrape();
        pausedAt = now('shardgate_cdc_waiting_parts', 's0');
        if (now('shardgate_cdc_reading_paused', 's0') === 1 || pausedAt > BOUND) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      scraping = false;
      await scraper;
      expect(pausedAt).toBe(BOUND);
      expect(Math.max(...samples.filter((n) => !Number.isNaN(n)))).toBeLessThanOrEqual(BOUND);
      // Nothing past the first transfer could come out: it waits for s1, and everything behind it on s0 too.
      const beforeRelease = events.length;
      expect(events.filter((e) => e.kind === 'global')).toHaveLength(0);

      link.release();
      const source = new Map<number, { balance: number; v: number }>();
      for (const c of shard) {
        for (const r of (await c.query<{ id: number; balance: number; v: number }>('SELECT id, balance, v FROM account')).rows) source.set(r.id, { balance: r.balance, v: r.v });
      }
      // Every row's last version seen.
      await until(() => [...source].every(([id, r]) => r.v === 0 || seen.has(`${id}:${r.v}`)));

      const after = events.slice(beforeRelease);
      const globals = after.filter((e) => e.kind === 'global');
      expect(globals).toHaveLength(TRANSFERS);
      // Each transfer whole: the debit on s0 and the credit on s1, one event.
      for (const e of globals) {
        expect(e.changes).toHaveLength(2);
        expect([...e.shards].sort()).toEqual(['s0', 's1']);
        const [a, b] = e.changes.map((c) => Number(c.new!.id));
        expect(on0.includes(a!) !== on0.includes(b!)).toBe(true);
      }
      expect(after.filter((e) => e.kind === 'local')).toHaveLength(TRANSFERS * LOCALS_PER_TRANSFER);
      // For every row, its versions in the order its shard committed them: 1, 2, 3, … with none missing or repeated.
      const last = new Map<number, number>();
      for (const e of events) {
        for (const c of e.changes) {
          const id = Number(c.new!.id);
          const v = Number(c.new!.v);
          expect(v, `account ${id}`).toBe((last.get(id) ?? 0) + 1);
          last.set(id, v);
        }
      }
      // The rows rebuilt from the events alone are the source's.
      const rebuilt = new Map<number, number>();
      for (const e of events) for (const c of e.changes) rebuilt.set(Number(c.new!.id), Number(c.new!.balance));
      for (const [id, r] of source) if (r.v > 0) expect(rebuilt.get(id), `account ${id}`).toBe(r.balance);
      // s0's local transactions in s0's commit order (their ids carry the commit LSN).
      const lsn = (id: string): bigint => {
        const [hi, lo] = id.slice(3).split('/') as [string, string];
        return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
      };
      const locals = events.filter((e) => e.kind === 'local' && e.shards[0] === 's0').map((e) => lsn(e.id));
      expect(locals).toEqual([...locals].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)));

      // Drained: nothing waits, nothing is paused.
      while ((await gauge('shardgate_cdc_waiting_parts', 's0')) !== 0) await new Promise((r) => setTimeout(r, 100));
      expect(await gauge('shardgate_cdc_reading_paused', 's0')).toBe(0);
      expect(await cdc.stop(), cdc.logs()).toBe(0);
    },
  );
});
