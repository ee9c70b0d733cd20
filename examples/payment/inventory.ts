/**
 * The inventory service of the payment example: a TCC participant over HTTP
 * with its own PostgreSQL database. Each of /try, /confirm, /cancel runs in a
 * local transaction guarded by the barrier (idempotent, empty cancel, no
 * hanging); 200 when done or skipped, 409 when the stock is short (FAILURE).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type pg from 'pg';
import { barrier, type TccOp } from '../../src/saga/barrier.js';
import type { Payment } from './payment.js';

class OutOfStock extends Error {}

const CHANGES: Readonly<Record<TccOp, string>> = {
  // Reserve: available → reserved, only when there is enough.
  try: 'UPDATE stock SET available = available - $2, reserved = reserved + $2 WHERE sku = $1 AND available >= $2',
  confirm: 'UPDATE stock SET reserved = reserved - $2, sold = sold + $2 WHERE sku = $1',
  cancel: 'UPDATE stock SET available = available + $2, reserved = reserved - $2 WHERE sku = $1',
};

/** Runs one TCC op for the gid in one transaction of `pool`. */
export async function stockOp(pool: pg.Pool, gid: string, op: TccOp, p: Payment): Promise<'done' | 'out-of-stock'> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await barrier(client, gid, 'stock', op, async () => {
      const res = await client.query(CHANGES[op], [p.sku, p.qty]);
      if (op === 'try' && res.rowCount !== 1) throw new OutOfStock();
    });
    await client.query('COMMIT');
    return 'done';
  } catch (err) {
    await client.query('ROLLBACK');
    if (err instanceof OutOfStock) return 'out-of-stock';
    throw err;
  } finally {
    client.release();
  }
}

/** Starts the service on a free port of 127.0.0.1. */
export async function startInventory(pool: pg.Pool): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const op = (req.url ?? '').slice(1) as TccOp;
      const { gid, payload } = JSON.parse(body) as { gid: string; payload: Payment };
      if (!(op in CHANGES)) return void res.writeHead(404).end();
      stockOp(pool, gid, op, payload).then(
        (r) => res.writeHead(r === 'done' ? 200 : 409, { 'content-type': 'application/json' }).end(JSON.stringify({ sku: payload.sku, result: r })),
        (err: unknown) => res.writeHead(500).end(err instanceof Error ? err.message : String(err)),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}
