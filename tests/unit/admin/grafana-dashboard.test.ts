import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CdcMetrics } from '../../../src/cdc/cdc-metrics.js';
import { Metrics } from '../../../src/observe/metrics.js';
import { sampleNames } from '../observe/prom-text.js';

interface Panel {
  readonly title: string;
  readonly datasource: { readonly type: string; readonly uid: string };
  readonly targets: readonly { readonly expr: string }[];
}

const dashboard = JSON.parse(readFileSync('dashboards/grafana-shardgate.json', 'utf8')) as {
  schemaVersion: number;
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown }[] };
};

const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'and', 'or', 'unless']);

/** Series names an expression reads: identifiers left after removing strings, label matchers, ranges, grouping and function names. */
function seriesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b(by|without|on|ignoring)\s*\([^)]*\)/g, '');
  return [...stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)]
    .filter((m) => !/^\s*\(/.test(stripped.slice(m.index + m[0].length)))
    .map((m) => m[0])
    .filter((id) => !PROMQL_WORDS.has(id) && !/^\d/.test(id));
}

describe('dashboards/grafana-shardgate.json', () => {
  it('is a Grafana dashboard with a Prometheus data source variable', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.uid).toBe('shardgate-overview');
    const ds = dashboard.templating.list.find((v) => v.type === 'datasource');
    expect(ds).toMatchObject({ name: 'datasource', query: 'prometheus' });
    for (const p of dashboard.panels) expect(p.datasource).toEqual({ type: 'prometheus', uid: '${datasource}' });
  });

  it('queries only series that Metrics exports, and shows every metric', async () => {
    const m = new Metrics({ shards: ['s0'] });
    m.setPoolSource(() => [{ shard: 's0', inUse: 0, idle: 0, waiting: 0 }]);
    // Transaction classes are the application's: their series exist once one is submitted.
    m.sagaStarted('payment', 'saga');
    // `shardgate cdc` serves its own registry; its series may be shown beside the proxy's.
    const cdc = new CdcMetrics();
    cdc.waiting('s0', 0, false);
    const exported = [...sampleNames(await m.text()), ...sampleNames(await cdc.text())];
    const used = new Set<string>();
    for (const panel of dashboard.panels) {
      expect(panel.targets.length, panel.title).toBeGreaterThan(0);
      for (const { expr } of panel.targets) {
        const series = seriesIn(expr);
        expect(series.length, expr).toBeGreaterThan(0);
        for (const s of series) {
          expect(exported, `${panel.title}: ${s}`).toContain(s);
          used.add(s.replace(/_(bucket|sum|count)$/, ''));
        }
      }
    }
    for (const name of m.metricNames()) expect(used, name).toContain(name);
    for (const name of ['shardgate_cdc_waiting_parts', 'shardgate_cdc_reading_paused', 'shardgate_cdc_held_memory_bytes', 'shardgate_cdc_spill_files']) expect(used, name).toContain(name);
  });

  it('finds the series of an expression and nothing else', () => {
    expect(seriesIn('histogram_quantile(0.99, sum by (shard, le) (rate(x_bucket{instance=~"$i"}[$__rate_interval])))')).toEqual(['x_bucket']);
    expect(seriesIn('sum(a_total) / sum(b_total)')).toEqual(['a_total', 'b_total']);
  });
});
