import { sgError } from '../errors/catalogue.js';

/** The named points in the commit protocol and recovery where a failure can be injected (src/tx/README.md). */
export const FAILPOINT_NAMES = [
  'before-prepare',
  'after-prepare',
  'before-decision',
  'after-decision',
  'between-commit-prepared',
  'before-recovery-resolve',
  'holding-cut-gate',
  'export-chunk-done',
] as const;
export type FailpointName = (typeof FAILPOINT_NAMES)[number];

export type FailpointAction =
  | { readonly kind: 'error' }
  | { readonly kind: 'delay'; readonly ms: number }
  | { readonly kind: 'crash' };

export interface FailpointRule {
  readonly name: FailpointName;
  readonly action: FailpointAction;
  /** Only on this shard; every shard when absent. */
  readonly shard?: string;
  /** Chance of firing at each hit, 0..1 (default 1). */
  readonly probability?: number;
}

const RULE = /^([a-z-]+)=(?:(\d+(?:\.\d+)?)%)?(error|crash|delay\((\d+)\))(?:@([A-Za-z0-9]+))?$/;

/**
 * Failure injection for crash and fault tests. Parsed from
 * `SHARDGATE_FAILPOINTS='name=[P%]action[@shard][;…]'` where action is
 * `error` (the step fails with SQLSTATE 08006), `delay(ms)` or `crash`
 * (SIGKILL of this process on the spot). With no rules, `hit` costs one
 * branch on an empty array.
 */
export class Failpoints {
  readonly #rules: FailpointRule[];

  constructor(rules: readonly FailpointRule[] = []) {
    this.#rules = [...rules];
  }

  /** Parses a specification; throws an Error naming the bad part. */
  static parse(spec: string): Failpoints {
    const rules: FailpointRule[] = [];
    for (const part of spec.split(';').map((p) => p.trim()).filter((p) => p !== '')) {
      const m = RULE.exec(part);
      if (!m) throw new Error(`bad failpoint "${part}": expected name=[P%]error|crash|delay(ms)[@shard]`);
      const [, name, percent, action, delayMs, shard] = m;
      if (!(FAILPOINT_NAMES as readonly string[]).includes(name!)) {
        throw new Error(`unknown failpoint "${name}": expected one of ${FAILPOINT_NAMES.join(', ')}`);
      }
      rules.push({
        name: name as FailpointName,
        action: action === 'error' ? { kind: 'error' } : action === 'crash' ? { kind: 'crash' } : { kind: 'delay', ms: Number(delayMs) },
        ...(shard !== undefined ? { shard } : {}),
        ...(percent !== undefined ? { probability: Math.min(100, Number(percent)) / 100 } : {}),
      });
    }
    return new Failpoints(rules);
  }

  /** From SHARDGATE_FAILPOINTS; none when unset. */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): Failpoints {
    return Failpoints.parse(env.SHARDGATE_FAILPOINTS ?? '');
  }

  /** True when any rule is set. */
  get active(): boolean {
    return this.#rules.length > 0;
  }

  get rules(): readonly FailpointRule[] {
    return this.#rules;
  }

  /** Replaces the rules (tests switch failpoints on and off between steps). */
  set(rules: readonly FailpointRule[]): void {
    this.#rules.splice(0, this.#rules.length, ...rules);
  }

  /**
   * Passes the named point: resolves at once unless a rule matches, in which
   * case it waits, throws the `failpoint` PgError, or kills the process.
   */
  async hit(name: FailpointName, shard?: string): Promise<void> {
    if (this.#rules.length === 0) return;
    for (const rule of this.#rules) {
      if (rule.name !== name || (rule.shard !== undefined && rule.shard !== shard)) continue;
      if (rule.probability !== undefined && Math.random() >= rule.probability) continue;
      switch (rule.action.kind) {
        case 'delay':
          await new Promise((r) => setTimeout(r, (rule.action as { ms: number }).ms));
          break;
        case 'error':
          throw sgError('failpoint', { name, shard: shard ?? '-' });
        case 'crash':
          process.kill(process.pid, 'SIGKILL');
          // SIGKILL is delivered before this resolves; never go on past a crash point.
          await new Promise(() => undefined);
      }
    }
  }
}
