import { afterEach, describe, expect, it } from 'vitest';
import { AdminServer, AdminSetupError } from '../../../src/admin/admin-server.js';
import { Metrics } from '../../../src/observe/metrics.js';
import { FakeAdminSource } from './fake-admin-source.js';

const TOKEN = 'correct-horse-battery-staple';
let server: AdminServer | null = null;

async function start(opts: { token?: string | null; metrics?: Metrics | null } = {}): Promise<{ base: string; source: FakeAdminSource; metrics: Metrics | null }> {
  const source = new FakeAdminSource();
  const metrics = opts.metrics === undefined ? new Metrics({ shards: ['s0'] }) : opts.metrics;
  server = new AdminServer({ host: '127.0.0.1', port: 0, token: opts.token === undefined ? TOKEN : opts.token, source, metrics });
  const { port } = await server.listen();
  return { base: `http://127.0.0.1:${port}`, source, metrics };
}

afterEach(async () => {
  await server?.close();
  server = null;
});

const post = (url: string, token?: string) => fetch(url, { method: 'POST', headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });

describe('AdminServer', () => {
  it('serves Prometheus metrics in text format 0.0.4', async () => {
    const { base, metrics } = await start();
    metrics!.routed('single');
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await res.text()).toContain('shardgate_routing_decisions_total{route="single"} 1');
  });

  it('answers the JSON API from its source', async () => {
    const { base, source } = await start();
    const tx = await (await fetch(`${base}/api/transactions`)).json();
    expect(tx).toEqual({ transactions: source.inFlightTx });
    const doubt = await (await fetch(`${base}/api/in-doubt`)).json();
    expect(doubt).toEqual({ inDoubt: source.inDoubtTx });
    const shards = (await (await fetch(`${base}/api/shards`)).json()) as { shards: { shard: string; healthy: boolean }[] };
    expect(shards.shards.map((s) => [s.shard, s.healthy])).toEqual([
      ['s0', true],
      ['s1', false],
    ]);
  });

  it('masks the configuration it serves even when the source forgot to', async () => {
    const { base } = await start();
    const res = await fetch(`${base}/api/config`);
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain('token-token-token-1');
    expect(JSON.parse(text)).toEqual({ adminToken: '***', shards: [{ name: 's0', url: 'postgres://pg:***@127.0.0.1/app' }] });
  });

  it('requires the bearer token to resolve an in-doubt transaction, then resolves it by its recorded decision', async () => {
    const { base, source } = await start();
    const url = `${base}/api/in-doubt/sg_gw1_s0_9/resolve`;
    expect((await post(url)).status).toBe(401);
    expect((await post(url, 'wrong-token')).status).toBe(401);
    expect((await post(url, `${TOKEN}x`)).status).toBe(401);
    expect((await fetch(url, { method: 'POST', headers: { authorization: `Basic ${TOKEN}` } })).status).toBe(401);
    expect(source.resolved).toEqual([]);
    const ok = await post(url, TOKEN);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ gid: 'sg_gw1_s0_9', outcome: 'commit' });
    expect(source.resolved).toEqual(['sg_gw1_s0_9']);
    const again = await post(url, TOKEN);
    expect(again.status).toBe(404);
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe('42704');
  });

  it('reports a transaction without a recorded decision as a conflict with the SQLSTATE', async () => {
    const { base, source } = await start();
    source.inDoubtTx = [{ ...source.inDoubtTx[0]!, decision: null }];
    const res = await post(`${base}/api/in-doubt/sg_gw1_s0_9/resolve`, TOKEN);
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('08007');
    expect(source.resolved).toEqual([]);
  });

  it('requires the token to reload and reports a refused reload with its reason', async () => {
    const { base, source } = await start();
    expect((await post(`${base}/api/reload`)).status).toBe(401);
    expect(source.reloads).toBe(0);
    expect((await post(`${base}/api/reload`, TOKEN)).status).toBe(200);
    source.reloadResult = { ok: false, reason: 'tables.account.key changed: existing rows would move' };
    const refused = await post(`${base}/api/reload`, TOKEN);
    expect(refused.status).toBe(409);
    expect(await refused.json()).toEqual(source.reloadResult);
    expect(source.reloads).toBe(2);
  });

  it('answers 403 to every state change when no token is configured', async () => {
    const { base, source } = await start({ token: null });
    for (const path of ['/api/reload', '/api/in-doubt/sg_gw1_s0_9/resolve']) {
      const res = await post(`${base}${path}`, 'anything');
      expect(res.status).toBe(403);
      expect(((await res.json()) as { error: { message: string } }).error.message).toContain('adminToken');
    }
    expect(source.reloads).toBe(0);
    expect(source.resolved).toEqual([]);
  });

  it('refuses a non-loopback address without a token', () => {
    const source = new FakeAdminSource();
    expect(() => new AdminServer({ host: '0.0.0.0', port: 0, source, metrics: null })).toThrow(AdminSetupError);
    expect(() => new AdminServer({ host: '10.1.2.3', port: 0, token: '', source, metrics: null })).toThrow(AdminSetupError);
    expect(() => new AdminServer({ host: '0.0.0.0', port: 0, token: TOKEN, source, metrics: null })).not.toThrow();
  });

  it('refuses a Host header naming another machine on a loopback address (DNS rebinding)', async () => {
    const { base } = await start();
    const { request } = await import('node:http');
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${base}/api/config`, { headers: { host: 'evil.example:80' } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(403);
  });

  it('keeps serving after a source fails, and answers unknown paths and wrong methods properly', async () => {
    const { base, source } = await start();
    source.failShards = true;
    expect((await fetch(`${base}/api/shards`)).status).toBe(500);
    expect((await fetch(`${base}/api/transactions`)).status).toBe(200);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    const wrong = await fetch(`${base}/api/reload`);
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST');
    expect((await post(`${base}/api/transactions`, TOKEN)).status).toBe(405);
    expect((await post(`${base}/api/in-doubt/${'x'.repeat(300)}/resolve`, TOKEN)).status).toBe(400);
  });

  it('answers 404 at /metrics when metrics are off', async () => {
    const { base } = await start({ metrics: null });
    expect((await fetch(`${base}/metrics`)).status).toBe(404);
  });

  it('serves a self-contained dashboard that only loads from itself', async () => {
    const { base } = await start();
    const res = await fetch(`${base}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("connect-src 'self'");
    const html = await res.text();
    expect(html).not.toMatch(/(src|href)=["']?(https?:)?\/\//);
    expect(html).not.toContain('innerHTML');
    for (const path of ['api/transactions', 'api/in-doubt', 'api/shards', 'api/sagas']) expect(html).toContain(path);
  });
});
