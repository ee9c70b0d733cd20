import type { ShardName } from '../../../src/config/names.js';
import { shardName } from '../../../src/config/names.js';
import type { PgError } from '../../../src/errors/pg-error.js';
import type { PreludeEvent, TxConnection, TxConnectionSource } from '../../../src/tx/index.js';

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

  /**
   * @param pipelined connections accept `prelude()`: queued statements are
   * logged with the operation that carries them, as one entry (one write).
   */
  constructor(
    names: readonly string[],
    readonly pipelined = false,
  ) {
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
  #prelude: { statements: readonly string[]; listener: (event: PreludeEvent) => void } | null = null;
  constructor(
    readonly shard: ShardName,
    readonly source: FakeSource,
  ) {}

  /** Only on a pipelined source; like BackendConnection, a prelude error skips the operation, which throws it. */
  prelude(statements: readonly string[], listener: (event: PreludeEvent) => void): boolean {
    if (!this.source.pipelined) return false;
    this.#prelude = statements.length === 0 ? null : { statements, listener };
    return true;
  }

  #answer(sql: string, params: readonly (string | null)[]): string | (string | null)[][] | undefined {
    const prelude = this.#prelude;
    this.#prelude = null;
    this.source.log.push(`${this.shard}: ${prelude === null ? sql : [...prelude.statements, sql].join('; ')}`);
    if (prelude !== null) {
      prelude.listener({ kind: 'sent' });
      for (const statement of prelude.statements) {
        try {
          this.source.respond(this.shard, statement, []);
        } catch (err) {
          prelude.listener({ kind: 'failed', error: err as PgError });
          throw err;
        }
      }
    }
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
    this.#prelude = null;
    this.source.inUse -= 1;
    if (broken) this.source.broken += 1;
  }
}
