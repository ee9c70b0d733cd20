import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isLoopbackHost } from '../config/parse-config.js';
import { PgError } from '../errors/pg-error.js';
import type { Logger } from '../observe/logger.js';
import { Metrics } from '../observe/metrics.js';
import { SAGA_LIST_STATUSES, type AdminSource, type SagaAdminSource, type SagaListStatus } from './admin-source.js';
import { DASHBOARD_CSP, DASHBOARD_HTML } from './dashboard-html.js';
import { maskConfig } from './mask-config.js';

/** Options of `new AdminServer()`. */
export interface AdminServerOptions {
  /** Default 127.0.0.1. A non-loopback address is refused unless `token` is set. */
  readonly host?: string;
  /** Default 9187; 0 picks a free port (see `listen()`'s result). */
  readonly port?: number;
  /** Bearer token for state-changing endpoints (config `adminToken`); null/absent: they answer 403. */
  readonly token?: string | null;
  readonly source: AdminSource;
  /** Served at /metrics; null: /metrics answers 404. */
  readonly metrics: Metrics | null;
  readonly logger?: Logger;
  /** The saga log (GET /api/sagas, POST /api/sagas/<gid>/retry and /abandon); null/absent: those answer 404. */
  readonly sagas?: SagaAdminSource | null;
}

/** Thrown by the constructor for an unsafe setup (a non-loopback host without a token). */
export class AdminSetupError extends Error {
  override readonly name = 'AdminSetupError';
}

const MAX_GID_BYTES = 200;
const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * The admin HTTP server (node:http, no framework): Prometheus `/metrics`, a
 * JSON API over an AdminSource and a self-contained dashboard at `/`.
 *
 * Guarantees: reads are open to whoever can reach the address, which is
 * loopback unless a token is configured; every state change (resolve, reload)
 * requires `Authorization: Bearer <token>` compared in constant time, and
 * answers 403 when no token is configured at all; configuration is masked
 * before it leaves the process; on a loopback address, requests whose Host
 * header names another machine are refused, so a web page cannot reach the
 * API through DNS rebinding. A failing source answers that one request with an
 * error and never stops the server.
 */
export class AdminServer {
  readonly #host: string;
  readonly #port: number;
  readonly #tokenDigest: Buffer | null;
  readonly #source: AdminSource;
  readonly #metrics: Metrics | null;
  readonly #logger: Logger | undefined;
  readonly #loopback: boolean;
  readonly #sagas: SagaAdminSource | null;
  #server: Server | null = null;

  constructor(opts: AdminServerOptions) {
    this.#host = opts.host ?? '127.0.0.1';
    this.#port = opts.port ?? 9187;
    const token = opts.token ?? null;
    this.#loopback = isLoopbackHost(this.#host);
    if (!this.#loopback && (token === null || token === '')) {
      throw new AdminSetupError(`refusing to serve the admin API on ${this.#host}, which is not a loopback address, without adminToken; set adminToken or listen on 127.0.0.1`);
    }
    this.#tokenDigest = token === null || token === '' ? null : digest(token);
    this.#source = opts.source;
    this.#metrics = opts.metrics;
    this.#logger = opts.logger;
    this.#sagas = opts.sagas ?? null;
  }

  /**
   * The server the configuration asks for (`admin`, `adminToken`), or null
   * when `admin` is omitted (no admin HTTP).
   */
  static fromConfig(
    config: { readonly admin: { readonly host: string; readonly port: number } | null; readonly adminToken: string | null },
    source: AdminSource,
    metrics: Metrics | null,
    logger?: Logger,
    sagas: SagaAdminSource | null = null,
  ): AdminServer | null {
    if (config.admin === null) return null;
    return new AdminServer({ host: config.admin.host, port: config.admin.port, token: config.adminToken, source, metrics, sagas, ...(logger ? { logger } : {}) });
  }

  /** Starts listening; resolves with the bound address once connections are accepted. */
  async listen(): Promise<{ host: string; port: number }> {
    if (this.#server !== null) throw new Error('admin server already listening');
    const server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => this.#fail(res, err));
    });
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, this.#host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address() as AddressInfo;
    return { host: addr.address, port: addr.port };
  }

  /** Stops accepting and closes every open connection (keep-alive ones included). */
  async close(): Promise<void> {
    const server = this.#server;
    if (server === null) return;
    this.#server = null;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Bodies are never needed; discarding them keeps memory flat whatever a client sends.
    req.resume();
    if (this.#loopback && !hostHeaderIsLoopback(req.headers.host)) {
      return sendJson(res, 403, { error: { message: 'the Host header must name a loopback address' } });
    }
    const url = new URL(req.url ?? '/', 'http://admin.invalid');
    const path = url.pathname;
    const method = req.method ?? 'GET';

    const resolveMatch = /^\/api\/in-doubt\/([^/]+)\/resolve$/.exec(path);
    if (resolveMatch !== null) {
      if (method !== 'POST') return methodNotAllowed(res, 'POST');
      if (!this.#authorized(req, res)) return;
      const gid = decodeGid(resolveMatch[1]!);
      if (gid === null) return sendJson(res, 400, { error: { message: 'invalid gid' } });
      this.#logger?.info({ gid }, 'admin: resolving in-doubt transaction by its recorded decision');
      return sendJson(res, 200, await this.#source.resolve(gid));
    }
    const sagaAction = /^\/api\/sagas\/([^/]+)\/(retry|abandon)$/.exec(path);
    if (sagaAction !== null) {
      if (method !== 'POST') return methodNotAllowed(res, 'POST');
      if (!this.#authorized(req, res)) return;
      if (this.#sagas === null) return sendJson(res, 404, { error: { message: SAGAS_OFF } });
      const gid = decodeGid(sagaAction[1]!);
      if (gid === null) return sendJson(res, 400, { error: { message: 'invalid gid' } });
      const action = sagaAction[2] as 'retry' | 'abandon';
      this.#logger?.info({ gid, action }, 'admin: saga action');
      return sendJson(res, 200, { saga: await (action === 'retry' ? this.#sagas.retry(gid) : this.#sagas.abandon(gid)) });
    }
    if (path === '/api/reload') {
      if (method !== 'POST') return methodNotAllowed(res, 'POST');
      if (!this.#authorized(req, res)) return;
      const result = await this.#source.reload();
      this.#logger?.info({ ok: result.ok, reason: result.reason }, 'admin: configuration reload');
      return sendJson(res, result.ok ? 200 : 409, result);
    }

    if (method !== 'GET' && method !== 'HEAD') return methodNotAllowed(res, 'GET, HEAD');
    switch (path) {
      case '/':
        return send(res, 200, 'text/html; charset=utf-8', DASHBOARD_HTML, { 'content-security-policy': DASHBOARD_CSP });
      case '/metrics':
        if (this.#metrics === null) return sendJson(res, 404, { error: { message: 'metrics are disabled' } });
        return send(res, 200, Metrics.contentType, await this.#metrics.text());
      case '/api/transactions':
        return sendJson(res, 200, { transactions: this.#source.inFlight() });
      case '/api/in-doubt':
        return sendJson(res, 200, { inDoubt: await this.#source.inDoubt() });
      case '/api/shards':
        return sendJson(res, 200, { shards: await this.#source.shardHealth() });
      case '/api/sagas': {
        if (this.#sagas === null) return sendJson(res, 404, { error: { message: SAGAS_OFF } });
        const statuses = parseSagaStatuses(url.searchParams.get('status'));
        const limit = Number(url.searchParams.get('limit') ?? '100');
        if (statuses === null) return sendJson(res, 400, { error: { message: `status must be a comma-separated list of ${SAGA_LIST_STATUSES.join(', ')}` } });
        if (!Number.isInteger(limit) || limit < 1 || limit > 1000) return sendJson(res, 400, { error: { message: 'limit must be an integer from 1 to 1000' } });
        return sendJson(res, 200, { sagas: await this.#sagas.list(statuses, limit) });
      }
      case '/api/config':
        return sendJson(res, 200, maskConfig(this.#source.config()));
      default:
        return sendJson(res, 404, { error: { message: `no such endpoint: ${path}` } });
    }
  }

  /** Answers 401/403 and returns false unless the request carries the configured token. */
  #authorized(req: IncomingMessage, res: ServerResponse): boolean {
    if (this.#tokenDigest === null) {
      sendJson(res, 403, { error: { message: 'state-changing admin endpoints are disabled: set adminToken in the configuration to enable them' } });
      return false;
    }
    const m = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
    // Comparing fixed-length digests in constant time leaks neither the token nor its length.
    if (m === null || !timingSafeEqual(digest(m[1]!), this.#tokenDigest)) {
      res.setHeader('www-authenticate', 'Bearer realm="shardgate-admin"');
      sendJson(res, 401, { error: { message: 'a valid "Authorization: Bearer <adminToken>" header is required' } });
      return false;
    }
    return true;
  }

  #fail(res: ServerResponse, err: unknown): void {
    if (err instanceof PgError) {
      // 42704 undefined_object: the named transaction is not in doubt, or no saga has the gid.
      const status = err.code === '42704' ? 404 : 409;
      const { code, message, detail, hint } = err.fields;
      sendJson(res, status, { error: { code, message, detail, hint, shard: err.shard } });
      return;
    }
    this.#logger?.error({ err }, 'admin: request failed');
    sendJson(res, 500, { error: { message: err instanceof Error ? err.message : String(err) } });
  }
}

const SAGAS_OFF = 'sagas are not configured on this instance (saga.database in the configuration)';

/** The statuses of `?status=a,b`; every listable status when absent; null when one is not listable. */
function parseSagaStatuses(raw: string | null): SagaListStatus[] | null {
  if (raw === null || raw === '') return [...SAGA_LIST_STATUSES];
  const list = raw.split(',');
  return list.every((s) => (SAGA_LIST_STATUSES as readonly string[]).includes(s)) ? (list as SagaListStatus[]) : null;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

function hostHeaderIsLoopback(host: string | undefined): boolean {
  if (host === undefined) return true; // HTTP/1.0 clients such as some scrapers send none
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::\d+)?$/.exec(host);
  if (m === null) return false;
  return isLoopbackHost(m[1] ?? m[2]!);
}

function decodeGid(raw: string): string | null {
  let gid: string;
  try {
    gid = decodeURIComponent(raw);
  } catch {
    return null;
  }
  return Buffer.byteLength(gid) <= MAX_GID_BYTES && /^[\x21-\x7e]+$/.test(gid) ? gid : null;
}

function methodNotAllowed(res: ServerResponse, allow: string): void {
  res.setHeader('allow', allow);
  sendJson(res, 405, { error: { message: `method not allowed; use ${allow}` } });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, JSON_TYPE, JSON.stringify(body));
}

function send(res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, {
    'content-type': type,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
