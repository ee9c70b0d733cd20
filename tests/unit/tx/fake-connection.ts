import type { ShardName } from '../../../src/config/names.js';
import { shardName } from '../../../src/config/names.js';
import type { TxConnection, TxConnectionSource } from '../../../src/tx/index.js';

/** Decides what a fake shard answers: a tag for exec, rows for rows(), or a thrown error. */
export type Responder = (shard: ShardName, sql: string, params: readonly (string | null)[]) => string | (string | null)[][] | undefined;

/** Every statement every fake connection received, in order, as `shard: sql`. */
export class FakeSource implements TxConnectionSource<FakeConnection> {
  readonly shards: readonly ShardName[];
  readonly log: string[] = [];
  readonly cancelled: ShardName[] = [];
  inUse = 0;
  broken = 0;
  respond: Responder = () => undefined;

  constructor(names: readonly string[]) {
    this.shards = names.map(shardName);
  }

  async acquire(shard: ShardName): Promise<FakeConnection> {
    this.inUse += 1;
    return new FakeConnection(shard, this);
  }

  /** Statements sent to one shard. */
  on(shard: string): string[] {
    return this.log.filter((l) => l.startsWith(`${shard}: `)).map((l) => l.slice(shard.length + 2));
  }
}

export class FakeConnection implements TxConnection {
  #released = false;
  constructor(
    readonly shard: ShardName,
    readonly source: FakeSource,
  ) {}

  #answer(sql: string, params: readonly (string | null)[]): string | (string | null)[][] | undefined {
    this.source.log.push(`${this.shard}: ${sql}`);
    return this.source.respond(this.shard, sql, params);
  }

  async exec(sql: string): Promise<string> {
    const answer = this.#answer(sql, []);
    if (typeof answer === 'string') return answer;
    const last = sql.split('; ').at(-1)!;
    if (last.startsWith('PREPARE TRANSACTION')) return 'PREPARE TRANSACTION';
    if (last.startsWith('COMMIT PREPARED')) return 'COMMIT PREPARED';
    if (last.startsWith('ROLLBACK PREPARED')) return 'ROLLBACK PREPARED';
    return last.split(' ')[0]!;
  }

  async rows(sql: string, params: readonly (string | null)[] = []): Promise<(string | null)[][]> {
    const answer = this.#answer(sql, params);
    return Array.isArray(answer) ? answer : [];
  }

  async cancel(): Promise<void> {
    this.source.cancelled.push(this.shard);
  }

  release(broken = false): void {
    if (this.#released) throw new Error('released twice');
    this.#released = true;
    this.source.inUse -= 1;
    if (broken) this.source.broken += 1;
  }
}
