/**
 * Transaction classes: one kind of global transaction (a payment, a
 * notification) that can run in more than one mode — a saga, TCC, or a
 * local transaction plus a message — and the switch between them. Each mode
 * is compiled to a saga definition the coordinator already runs from its
 * durable log; which mode a global transaction gets is chosen once, at
 * submit, from the hash of its gid under the configured mode and rollout
 * (`saga.classes` in the configuration), and kept in its log row.
 */
import { createHash } from 'node:crypto';
import { ConfigError, type ConfigIssue } from '../config/config-error.js';
import type { SagaModeConfig, TransactionMode } from '../config/types.js';
import { writeOutbox } from './outbox.js';
import type { RetryPolicy } from './retry-policy.js';
import type { SagaDefinition, SagaStep, StepCall, StepContext } from './saga-definition.js';

export type { SagaModeConfig, TransactionMode } from '../config/types.js';

/** The modes a class may declare, in the order they are listed in messages. */
export const TRANSACTION_MODES: readonly TransactionMode[] = ['saga', 'tcc', 'outbox'];

/**
 * A transaction class: a saga definition per mode it can run in (build the
 * TCC one with `tccSaga`, the outbox one with `outboxSaga`), and the mode used
 * when the configuration names none for it.
 */
export interface TransactionClass {
  readonly modes: Readonly<Partial<Record<TransactionMode, SagaDefinition>>>;
  readonly defaultMode: TransactionMode;
}

/** One TCC branch: a participant's try, confirm and cancel. */
export interface TccBranch {
  /** Unique within the definition; the steps are `<name>.try` and `<name>.confirm`. */
  readonly name: string;
  readonly try: StepCall;
  readonly confirm: StepCall;
  readonly cancel: StepCall;
}

/** A TCC global transaction: its branches (tried together, then confirmed together) and their retries. */
export interface TccDefinition {
  readonly branches: readonly TccBranch[];
  readonly retry?: RetryPolicy;
}

/**
 * TCC as a two-stage saga: every branch's try in the first stage (run
 * together), with its cancel as compensation; every confirm in the second. A
 * try that answers FAILURE makes the coordinator cancel the tries that ran or
 * may have run (the participant's barrier turns a cancel without its try into
 * an empty cancel); once every try is done, only confirms are left, and a
 * confirm may not refuse (`mayRefuse: false`): a FAILURE from it is retried
 * like an error until it succeeds or the step is exhausted, never turned into
 * a cancel, so no branch is both confirmed and cancelled.
 */
export function tccSaga(def: TccDefinition): SagaDefinition {
  const tries: SagaStep[] = def.branches.map((b, i) => ({ name: `${b.name}.try`, action: b.try, compensation: b.cancel, parallel: i > 0 }));
  const confirms: SagaStep[] = def.branches.map((b, i) => ({ name: `${b.name}.confirm`, action: b.confirm, parallel: i > 0, mayRefuse: false }));
  return { steps: [...tries, ...confirms], ...(def.retry !== undefined ? { retry: def.retry } : {}) };
}

/** A local transaction plus a message. */
export interface OutboxDefinition {
  /** Where the message is published (a JetStream subject, a RabbitMQ routing key). */
  readonly topic: string;
  /** The message's body from the step's context; the saga's payload by default. */
  readonly message?: (ctx: StepContext) => unknown;
  /** Schema of the outbox table: the coordinator's saga schema, so the relay of that schema publishes it. */
  readonly schema?: string;
  readonly retry?: RetryPolicy;
}

/**
 * The outbox mode as a one-step saga: a local step that writes the message
 * into the outbox in the coordinator's claim transaction, so the message row
 * and the step's `done` commit together, once. The saga row itself was
 * written with the caller's business change (`submit` takes the caller's
 * transaction), so the message exists exactly when that change committed.
 * The message id is the saga's gid, so a consumer's inbox dedupes on it.
 */
export function outboxSaga(def: OutboxDefinition): SagaDefinition {
  const publish: StepCall = {
    kind: 'local',
    run: async (tx, ctx) => {
      await writeOutbox(tx, def.topic, def.message === undefined ? ctx.payload : def.message(ctx), { id: ctx.gid, ...(def.schema !== undefined ? { schema: def.schema } : {}) });
    },
  };
  return { steps: [{ name: 'publish', action: publish }], ...(def.retry !== undefined ? { retry: def.retry } : {}) };
}

/**
 * Where `gid` falls in [0, 100): the first 32 bits of its SHA-256 scaled.
 * The same gid always lands in the same place, in any process, so a
 * submitter that retries with the gid it chose gets the same mode.
 */
export function rolloutBucket(gid: string): number {
  return (createHash('sha256').update(gid).digest().readUInt32BE(0) / 2 ** 32) * 100;
}

/** The mode of a new global transaction `gid` of a class under `cfg` (the class's default when absent). */
export function chooseMode(gid: string, defaultMode: TransactionMode, cfg: SagaModeConfig | undefined): TransactionMode {
  if (cfg === undefined) return defaultMode;
  const r = cfg.rollout;
  return r !== undefined && rolloutBucket(gid) < r.percent ? r.mode : cfg.mode;
}

/** Throws when a class cannot be run: no modes, or a default mode it does not declare. */
export function checkClass(name: string, cls: TransactionClass): void {
  const declared = declaredModes(cls);
  if (declared.length === 0) throw new Error(`transaction class "${name}" declares no modes; give it at least one of ${TRANSACTION_MODES.join(', ')}`);
  if (!declared.includes(cls.defaultMode)) throw new Error(`transaction class "${name}" has default mode ${cls.defaultMode} but declares only ${declared.join(', ')}`);
}

/** The modes a class declares, in TRANSACTION_MODES order. */
export function declaredModes(cls: TransactionClass): TransactionMode[] {
  return TRANSACTION_MODES.filter((m) => cls.modes[m] !== undefined);
}

/**
 * Checks mode settings against the classes a coordinator runs; throws a
 * ConfigError listing every problem (paths as in the file,
 * `saga.classes.<name>.mode`): a class the coordinator does not know, a mode
 * or rollout mode the class does not declare, a percent outside 0–100 (the
 * configuration schema refuses that too; checked here for settings given in
 * code).
 */
export function checkModes(classes: Readonly<Record<string, TransactionClass>>, modes: Readonly<Record<string, SagaModeConfig>>): void {
  const issues: ConfigIssue[] = [];
  for (const [name, cfg] of Object.entries(modes)) {
    const at = `saga.classes.${name}`;
    const cls = classes[name];
    if (cls === undefined) {
      issues.push({ path: at, message: `no transaction class "${name}" is defined in this coordinator (it runs ${Object.keys(classes).join(', ') || 'none'}); remove the entry or define the class` });
      continue;
    }
    const declared = declaredModes(cls);
    const undeclared = (mode: TransactionMode, path: string): void => {
      if (!declared.includes(mode)) issues.push({ path, message: `class "${name}" cannot run in mode ${mode}; it declares ${declared.join(', ')}` });
    };
    undeclared(cfg.mode, `${at}.mode`);
    if (cfg.rollout !== undefined) {
      undeclared(cfg.rollout.mode, `${at}.rollout.mode`);
      const p = cfg.rollout.percent;
      if (!(Number.isFinite(p) && p >= 0 && p <= 100)) issues.push({ path: `${at}.rollout.percent`, message: `expected a percentage from 0 to 100, got ${p}` });
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);
}
