import pg from 'pg';
import type { ShardName } from '../../../src/config/names.js';
import { sgError } from '../../../src/errors/catalogue.js';
import { PgError, type ErrorFields } from '../../../src/errors/pg-error.js';
import type { TxConnection, TxConnectionSource } from '../../../src/tx/index.js';

const RAW_TEXT = { getTypeParser: () => (value: string) => value };
const lastTags = new WeakMap<pg.Client, string>();

/** A connected client whose last full command tag is kept (pg reports only a tag's first word). */
async function connectClient(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  (client as unknown as { connection: { on(ev: string, fn: (msg: { text: string }) => void): void } }).connection.on('commandComplete', (msg) => {
    lastTags.set(client, msg.text);
  });
  await client.connect();
  return client;
}

function toPgError(err: unknown, shard: ShardName): PgError {
  if (err instanceof PgError) return err;
  const e = err as Partial<Record<keyof ErrorFields, string>> & { message?: string };
  if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) {
    const fields: Record<string, string> = { severity: e.severity ?? 'ERROR', code: e.code, message: e.message ?? '' };
    for (const k of ['detail', 'hint', 'position', 'where', 'schema', 'table', 'column', 'dataType', 'constraint', 'routine'] as const) {
      if (typeof e[k] === 'string') fields[k] = e[k];
    }
    return new PgError(fields as unknown as ErrorFields, shard);
  }
  return new PgError({ severity: 'ERROR', code: '08006', message: `shard ${shard}: ${e.message ?? String(err)}` }, shard);
}

/** A TxConnection over one pg.Client, for tests: raw command tags, text rows, cancel through pg_cancel_backend. */
export class PgConnection implements TxConnection {
  readonly shard: ShardName;
  readonly client: pg.Client;
  readonly #pool: PgShardPool;
  released = false;

  constructor(shard: ShardName, client: pg.Client, pool: PgShardPool) {
    this.shard = shard;
    this.client = client;
    this.#pool = pool;
  }

  get pid(): number {
    return (this.client as unknown as { processID: number }).processID;
  }

  async exec(sql: string): Promise<string> {
    try {
      await this.client.query(sql);
      return lastTags.get(this.client) ?? '';
    } catch (err) {
      throw toPgError(err, this.shard);
    }
  }

  async rows(sql: string, params: readonly (string | null)[] = []): Promise<(string | null)[][]> {
    try {
      const res = await this.client.query<(string | null)[]>({ text: sql, values: [...params], rowMode: 'array', types: RAW_TEXT });
      return res.rows;
    } catch (err) {
      throw toPgError(err, this.shard);
    }
  }

  async cancel(): Promise<void> {
    const other = new pg.Client({ connectionString: this.#pool.url });
    await other.connect();
    try {
      await other.query('SELECT pg_cancel_backend($1)', [this.pid]);
    } finally {
      await other.end();
    }
  }

  release(broken = false): void {
    if (this.released) throw new Error(`connection to ${this.shard} released twice`);
    this.released = true;
    this.#pool.giveBack(this, broken);
  }
}

/** A small pool of pg.Clients for one shard. */
class PgShardPool {
  readonly #idle: pg.Client[] = [];
  readonly #waiters: ((client: pg.Client | null) => void)[] = [];
  inUse = 0;
  #open = 0;

  constructor(readonly shard: ShardName, readonly url: string, readonly max: number) {}

  async acquire(timeoutMs: number): Promise<PgConnection> {
    this.inUse += 1;
    try {
      const idle = this.#idle.pop();
      if (idle) return new PgConnection(this.shard, idle, this);
      if (this.#open < this.max) {
        this.#open += 1;
        try {
          return new PgConnection(this.shard, await connectClient(this.url), this);
        } catch (err) {
          this.#open -= 1;
          throw toPgError(err, this.shard);
        }
      }
      const client = await new Promise<pg.Client | null>((resolve) => {
        const timer = setTimeout(() => {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          resolve(null);
        }, timeoutMs);
        const waiter = (c: pg.Client | null): void => {
          clearTimeout(timer);
          resolve(c);
        };
        this.#waiters.push(waiter);
      });
      if (!client) throw sgError('shardBusy', { shard: this.shard, timeoutMs });
      return new PgConnection(this.shard, client, this);
    } catch (err) {
      this.inUse -= 1;
      throw err;
    }
  }

  giveBack(conn: PgConnection, broken: boolean): void {
    this.inUse -= 1;
    if (broken) {
      this.#open -= 1;
      void conn.client.end().catch(() => undefined);
      const waiter = this.#waiters.shift();
      if (waiter) {
        // Hand a fresh client to the next waiter.
        this.inUse += 1;
        this.#open += 1;
        connectClient(this.url).then(
          (client) => {
            this.inUse -= 1;
            waiter(client);
          },
          () => {
            this.inUse -= 1;
            this.#open -= 1;
            waiter(null);
          },
        );
      }
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter) waiter(conn.client);
    else this.#idle.push(conn.client);
  }

  async close(): Promise<void> {
    const idle = this.#idle.splice(0);
    this.#open -= idle.length;
    await Promise.all(idle.map((c) => c.end().catch(() => undefined)));
  }
}

/** TxConnectionSource over pg pools, one per shard. */
export class PgSource implements TxConnectionSource<PgConnection> {
  readonly shards: readonly ShardName[];
  readonly #pools: Map<ShardName, PgShardPool>;

  constructor(urls: Readonly<Record<string, string>>, maxPerShard = 30) {
    this.shards = Object.keys(urls) as ShardName[];
    this.#pools = new Map(Object.entries(urls).map(([s, url]) => [s as ShardName, new PgShardPool(s as ShardName, url, maxPerShard)]));
  }

  acquire(shard: ShardName, timeoutMs: number): Promise<PgConnection> {
    const pool = this.#pools.get(shard);
    if (!pool) return Promise.reject(sgError('unknownShard', { shard, shards: this.shards.join(', ') }));
    return pool.acquire(timeoutMs);
  }

  /** Connections handed out and not yet released, over all shards. */
  inUse(): number {
    return [...this.#pools.values()].reduce((n, p) => n + p.inUse, 0);
  }

  async close(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((p) => p.close()));
  }
}
