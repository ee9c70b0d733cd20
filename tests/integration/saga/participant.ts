import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SagaDefinition } from '../../../src/saga/saga-definition.js';
import { tccSaga, type TransactionClass } from '../../../src/saga/transaction-class.js';

/** One request a participant received. */
export interface Received {
  readonly path: string;
  readonly key: string;
  readonly gid: string | undefined;
  readonly payload: unknown;
}

/** What the participant answers to a request: a status, and whether the request's effect is applied first. */
export interface Answer {
  readonly status: number;
  /** Apply the effect (once per idempotency key) before answering; true for 2xx by default. */
  readonly apply?: boolean;
  /** Never answer (the caller's connection stays open until it goes away). */
  readonly hang?: boolean;
}

/**
 * A small HTTP service standing in for inventory, payments or shipping: every
 * request is recorded; an effect is applied at most once per Idempotency-Key
 * (a repeated key answers as the first did, without applying again), as a
 * participant of a saga must do.
 */
export class Participant {
  readonly received: Received[] = [];
  /** Keys whose effect was applied; a repeated key is not applied again (the participant's dedupe, as in production). */
  readonly applied = new Set<string>();
  /** Chooses the answer; `n` counts this key's requests from 1. */
  answer: (r: Received, n: number) => Answer | Promise<Answer> = () => ({ status: 200 });
  readonly #server: Server;
  readonly #hung = new Set<IncomingMessage>();

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(): Promise<Participant> {
    const server = createServer();
    const p = new Participant(server);
    server.on('request', (req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        void (async () => {
          const key = String(req.headers['idempotency-key'] ?? '');
          const gid = req.headers['shardgate-gid'];
          const r: Received = { path: req.url ?? '', key, gid: typeof gid === 'string' ? gid : undefined, payload: (JSON.parse(body) as { payload?: unknown }).payload };
          p.received.push(r);
          const n = p.received.filter((x) => x.key === key).length;
          const a = await p.answer(r, n);
          if (a.apply ?? (a.status >= 200 && a.status < 300)) p.applied.add(key);
          if (a.hang === true) {
            p.#hung.add(req);
            return;
          }
          res.writeHead(a.status, { 'content-type': 'application/json' }).end(JSON.stringify({ key }));
        })();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return p;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Paths received for a gid, in order. */
  paths(gid: string): string[] {
    return this.received.filter((r) => r.key.startsWith(`${gid}:`)).map((r) => r.path);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** A three-step saga over HTTP: reserve stock, charge, notify; each undone by its `/undo` path. */
export function threeStepSaga(base: string, retry?: SagaDefinition['retry']): SagaDefinition {
  const step = (name: string): SagaDefinition['steps'][number] => ({
    name,
    action: { kind: 'http', url: `${base}/${name}` },
    compensation: { kind: 'http', url: `${base}/${name}/undo` },
  });
  return { steps: [step('reserve'), step('charge'), step('notify')], ...(retry !== undefined ? { retry } : {}) };
}

/**
 * A payment that runs as a saga (`/saga/debit`, undone by `/saga/refund`)
 * or as TCC (`/tcc/try`, `/tcc/confirm`, `/tcc/cancel`); a saga by default.
 */
export function paymentClass(base: string, retry?: SagaDefinition['retry']): TransactionClass {
  const r = retry !== undefined ? { retry } : {};
  return {
    defaultMode: 'saga',
    modes: {
      saga: { steps: [{ name: 'debit', action: { kind: 'http', url: `${base}/saga/debit` }, compensation: { kind: 'http', url: `${base}/saga/refund` } }], ...r },
      tcc: tccSaga({
        branches: [{ name: 'account', try: { kind: 'http', url: `${base}/tcc/try` }, confirm: { kind: 'http', url: `${base}/tcc/confirm` }, cancel: { kind: 'http', url: `${base}/tcc/cancel` } }],
        ...r,
      }),
    },
  };
}
