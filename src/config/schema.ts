import { z } from 'zod';
import { BYTE_SIZE_FORMS, byteSize } from './byte-size.js';

/**
 * The configuration contract of ../shared/CONFIG.md, as a zod schema. Unknown
 * keys are errors; every key keeps its documented meaning.
 */

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[^\s:]+):\d{1,5}$/, 'expected host:port, for example 127.0.0.1:6432');

const column = z.string().regex(/^[A-Za-z_][A-Za-z0-9_$]*$/, 'expected a column name');

export const embeddedShardSchema = z.strictObject({ embedded: z.string().min(1, 'expected a folder path') });
export const shardSchema = z.union([
  z.string().regex(/^postgres(ql)?:\/\//, 'expected a postgres:// URL or { embedded: FOLDER }'),
  embeddedShardSchema,
]);

const rangeEntry = z.strictObject({
  below: z.union([z.string(), z.number()]).optional(),
  shard: z.string(),
});

export const tableRuleSchema = z.union([
  z.strictObject({ broadcast: z.literal(true) }),
  z.strictObject({
    key: column,
    algorithm: z.enum(['hash', 'mod']).default('hash'),
  }),
  z.strictObject({
    key: column,
    algorithm: z.literal('range'),
    ranges: z.array(rangeEntry).min(1, 'expected at least one range'),
  }),
]);

const transactionMode = z.enum(['saga', 'tcc', 'outbox'], { message: 'expected saga, tcc or outbox' });

const postgresUrl = (what: string) => z.string().regex(/^postgres(ql)?:\/\//, `expected a postgres:// URL of ${what}`);

/** `saga.relay`: the outbox relay and the two-phase messages' back-check that `shardgate serve` runs. */
const relaySchema = z.strictObject({
  sink: z
    .strictObject({
      kind: z.enum(['nats', 'rabbitmq'], { message: 'expected nats or rabbitmq' }),
      url: z.string().regex(/^(nats|tls|amqps?):\/\/\S+$/, 'expected a nats:// or amqp:// URL').optional(),
      /** NATS: a JetStream stream created when missing (an existing one is used as it is). */
      stream: z
        .strictObject({
          name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected a JetStream stream name (letters, digits, _ and -)'),
          subjects: z.array(z.string().min(1)).min(1),
        })
        .optional(),
      /** RabbitMQ: the exchange the topics are routing keys of; '' (the default exchange) makes each topic a durable queue. */
      exchange: z.string().optional(),
    })
    .superRefine((sink, ctx) => {
      if (sink.kind === 'nats' && sink.exchange !== undefined) ctx.addIssue({ code: 'custom', path: ['exchange'], message: 'only with kind: rabbitmq (NATS publishes to the topic as subject)' });
      if (sink.kind === 'rabbitmq' && sink.stream !== undefined) ctx.addIssue({ code: 'custom', path: ['stream'], message: 'only with kind: nats (a JetStream stream)' });
      if (sink.url !== undefined && (sink.kind === 'nats') !== /^(nats|tls):/.test(sink.url)) {
        ctx.addIssue({ code: 'custom', path: ['url'], message: sink.kind === 'nats' ? 'expected a nats:// URL for kind: nats' : 'expected an amqp:// URL for kind: rabbitmq' });
      }
    }),
  intervalMs: z.number().int().min(1).default(1000),
  batchSize: z.number().int().min(1).max(10_000).default(100),
  backCheck: z
    .strictObject({
      url: z.string().regex(/^https?:\/\/\S+$/, 'expected an http:// or https:// URL answering { "outcome": "commit" | "rollback" | "unknown" }').optional(),
      database: postgresUrl('the business database holding message_decision').optional(),
      schema: z.string().min(1).max(63, 'expected at most 63 characters (a PostgreSQL identifier)').optional(),
      afterMs: z.number().int().min(0).default(30_000),
      intervalMs: z.number().int().min(1).default(5000),
    })
    .superRefine((b, ctx) => {
      if ((b.url === undefined) === (b.database === undefined)) ctx.addIssue({ code: 'custom', path: [], message: 'expected exactly one of url (an HTTP back-check) or database (the message_decision table)' });
      if (b.url !== undefined && b.schema !== undefined) ctx.addIssue({ code: 'custom', path: ['schema'], message: 'only with database' });
    })
    .optional(),
});

export const userSchema = z.strictObject({ name: z.string().min(1), password: z.string().min(1) });

export const configSchema = z
  .strictObject({
    listen: hostPort.default('127.0.0.1:6432'),
    admin: hostPort.optional(),
    adminToken: z.string().min(16, 'expected at least 16 characters').optional(),
    database: z.string().min(1).default('app'),
    auth: z
      .strictObject({
        users: z.array(userSchema).default([]),
        trust: z.boolean().default(false),
      })
      .default({ users: [], trust: false }),
    coordinatorId: z
      .string()
      .regex(/^[A-Za-z0-9]{1,32}$/, 'expected 1-32 letters or digits (it is part of every gid)')
      .default('gw1'),
    shards: z.record(z.string().regex(/^[A-Za-z0-9]{1,32}$/, 'expected 1-32 letters or digits'), shardSchema),
    defaultShard: z.string().optional(),
    pool: z
      .strictObject({
        maxPerShard: z.number().int().min(1).max(10_000).default(20),
        acquireTimeoutMs: z.number().int().min(1).default(10_000),
        maxClients: z.number().int().min(1).default(10_000),
      })
      .default({ maxPerShard: 20, acquireTimeoutMs: 10_000, maxClients: 10_000 }),
    transactions: z
      .strictObject({
        prepareTimeoutMs: z.number().int().min(1).default(5000),
        recoveryIntervalMs: z.number().int().min(0).default(5000),
      })
      .default({ prepareTimeoutMs: 5000, recoveryIntervalMs: 5000 }),
    tables: z.record(z.string(), tableRuleSchema).default({}),
    /** TLS for clients: PEM certificate chain and private key files; `required` refuses plaintext clients. */
    tls: z
      .strictObject({
        cert: z.string().min(1, 'expected a PEM certificate file path'),
        key: z.string().min(1, 'expected a PEM private key file path'),
        required: z.boolean().default(false),
      })
      .optional(),
    /** Where the saga, outbox and barrier logs live (src/saga), and how long finished rows are kept. */
    saga: z
      .strictObject({
        database: postgresUrl('the database holding the saga log'),
        schema: z.string().min(1).max(63, 'expected at most 63 characters (a PostgreSQL identifier)').default('shardgate_saga'),
        retentionMs: z.number().int().min(0).default(7 * 24 * 3_600_000),
        cleanupBatch: z.number().int().min(1).max(100_000).default(1000),
        /** Per transaction class: the mode of its new global transactions, and a percentage rollout to another mode. */
        classes: z
          .record(
            z.string().min(1),
            z.strictObject({
              mode: transactionMode,
              rollout: z
                .strictObject({
                  mode: transactionMode,
                  percent: z.number().min(0, 'expected a percentage from 0 to 100').max(100, 'expected a percentage from 0 to 100'),
                })
                .optional(),
            }),
          )
          .default({}),
        /** How long consumers' inbox rows (message ids already handled) are kept; absent: the inbox is not cleaned. */
        inboxRetentionMs: z.number().int().min(0).optional(),
        relay: relaySchema.optional(),
      })
      .optional(),
    /** `shardgate cdc` (src/cdc): its memory limit, spill folder and bound on waiting parts; each flag of the same name wins over its key. */
    cdc: z
      .strictObject({
        memoryLimit: z
          .union([z.number(), z.string()])
          .refine((v) => byteSize(v) !== null, `expected a size: ${BYTE_SIZE_FORMS}`)
          .optional(),
        spillDir: z.string().min(1, 'expected a folder path').optional(),
        maxWaitingParts: z.number().int().min(1).optional(),
      })
      .optional(),
    /** Log statements that take at least this many milliseconds (0 logs every statement); absent: off. */
    slowStatementMs: z.number().int().min(0).optional(),
  });

export type RawConfig = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
export type TableRuleConfig = z.output<typeof tableRuleSchema>;
export type ShardConfig = z.output<typeof shardSchema>;
