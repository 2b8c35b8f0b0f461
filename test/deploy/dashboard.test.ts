// The Grafana dashboard: well-formed panels, every expression parses (promtool) and selects only
// metrics the app exposes or the rules record, so a typo in a metric name fails here.
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import {
  APP_METRIC_NAMES,
  STANDARD_METRIC_NAMES,
  allExpressions,
  dashboardExpressions,
  flattenPanels,
  loadDashboard,
  loadRules,
  metricNames,
  substituteGrafanaMacros,
} from './expressions.js';
import { promtool } from './promtool.js';

const dashboard = loadDashboard();
const panels = flattenPanels(dashboard.panels);
const dataPanels = panels.filter((p) => p.type !== 'row');
const DS_UID = '${DS_PROMETHEUS}';
const ROOT = path.resolve(import.meta.dirname, '..', '..');

const recorded = loadRules().groups.flatMap((g) => g.rules.flatMap((r) => (r.record ? [r.record] : [])));
const known = new Set([...APP_METRIC_NAMES, ...STANDARD_METRIC_NAMES, ...recorded]);

describe('dashboard structure', () => {
  it('is a schemaVersion 39 dashboard with a DS_PROMETHEUS datasource variable', () => {
    expect(dashboard.schemaVersion).toBe(39);
    expect(dashboard.uid).toBe('order-items-slo');
    const variable = dashboard.templating?.list.find((v) => v.name === 'DS_PROMETHEUS');
    expect(variable?.type).toBe('datasource');
    expect(variable?.['query']).toBe('prometheus');
  });

  it('has unique panel ids', () => {
    const ids = panels.map((p) => p.id);
    expect(ids.every((id) => typeof id === 'number')).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('every panel has the Prometheus datasource and at least one target with an expr', () => {
    expect(dataPanels.length).toBeGreaterThan(0);
    for (const p of dataPanels) {
      const where = `panel ${p.id ?? '?'} "${p.title ?? ''}"`;
      expect(p.datasource, where).toEqual({ type: 'prometheus', uid: DS_UID });
      const withExpr = (p.targets ?? []).filter((t) => (t.expr ?? '').trim() !== '');
      expect(withExpr.length, `${where} has no target with an expr`).toBeGreaterThan(0);
      for (const t of p.targets ?? []) {
        if (t.datasource) expect(t.datasource, `${where} target ${t.refId ?? '?'}`).toEqual(p.datasource);
      }
      const refIds = (p.targets ?? []).map((t) => t.refId);
      expect(new Set(refIds).size, `${where} refIds`).toBe(refIds.length);
    }
  });

  it('every panel fits the 24-column grid', () => {
    for (const p of panels) {
      expect(p.gridPos, `panel ${p.id ?? '?'}`).toBeDefined();
      const g = p.gridPos ?? { x: 0, y: 0, w: 0, h: 0 };
      expect(g.x + g.w, `panel ${p.id ?? '?'}`).toBeLessThanOrEqual(24);
      expect(g.w * g.h, `panel ${p.id ?? '?'}`).toBeGreaterThan(0);
    }
  });

  it('has the per-stage breakdown with every stage, the api first-served time and the MySQL read', () => {
    const exprs = dashboardExpressions(dashboard).map((e) => e.expr).join('\n');
    for (const stage of ['source', 'landing', 'bronze', 'silver', 'gold', 'staging', 'api']) {
      expect(exprs).toContain(`order_items_pipeline_stage_duration_seconds{job="order-items-api",stage="${stage}"}`);
    }
    expect(exprs).toContain('order_items_batch_first_served_seconds');
    expect(exprs).toContain('order_items_pipeline_stage_lag_seconds');
    expect(exprs).toMatch(/histogram_quantile\(0\.99, sum by \(le, query\) \(rate\(db_query_duration_seconds_bucket/);
    expect(exprs).toMatch(/histogram_quantile\(0\.99, sum by \(le, route\) \(rate\(http_request_duration_seconds_bucket/);
  });

  // Audit: summing every query (the monitoring timer's, the pipeline writes, the freshness lookup
  // that runs beside the data query) put the MySQL share of request time at 155%.
  it('compares the request time with the data queries only, each a query name the repositories use', () => {
    const exprs = dashboardExpressions(dashboard).map((e) => e.expr);
    const share = exprs.filter((e) => e.includes('db_query_duration_seconds_sum') && e.includes('http_request_duration_seconds_sum'));
    const stacked = exprs.filter((e) => /sum by \(le\) \(rate\(db_query_duration_seconds_bucket/.test(e));
    expect(share).toHaveLength(1);
    expect(stacked).toHaveLength(1);
    const sources = readdirSync(path.join(ROOT, 'src', 'modules'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('repository.ts'))
      .map((f) => readFileSync(path.join(ROOT, 'src', 'modules', f), 'utf8'))
      .join('\n');
    for (const expr of [...share, ...stacked]) {
      const selected = /query=~"([^"]+)"/.exec(expr)?.[1];
      expect(selected, expr).toBeDefined();
      const names = (selected ?? '').split('|');
      expect(names.sort()).toEqual(['getOrder', 'getOrderItem', 'listOrderItems', 'summarizeOrderItems']);
      for (const name of names) expect(sources, name).toContain(`'${name}'`);
    }
  });
});

describe('expressions', () => {
  const expressions = allExpressions();

  it('come from both the dashboard and the rules, with every Grafana macro substituted', () => {
    expect(expressions.some((e) => e.source === 'dashboard')).toBe(true);
    expect(expressions.some((e) => e.source === 'rules')).toBe(true);
    for (const e of expressions) expect(e.expr, e.name).not.toContain('$');
    expect(substituteGrafanaMacros('rate(x[$__rate_interval]) + increase(x[${__range}]) / $__range_s')).toBe(
      'rate(x[1m]) + increase(x[6h]) / 21600',
    );
  });

  it('the metric-name scan finds selectors and ignores functions, labels, strings and durations', () => {
    expect(
      metricNames(
        'histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket{job="a",le="0.25"}[5m] offset 1h)))' +
          ' / on (slo) group_left() (1 - slo:objective:ratio) > bool 1e3 and label_replace(up, "x", "y", "", "")',
      ),
    ).toEqual(['http_request_duration_seconds_bucket', 'slo:objective:ratio', 'up']);
    expect(metricNames('sum(rate(http_request_duraton_seconds_count[5m]))')).toEqual([
      'http_request_duraton_seconds_count',
    ]);
    expect(known.has('http_request_duraton_seconds_count')).toBe(false);
  });

  it('select only metrics the app exposes, recording rules of the rules file, or standard ones', () => {
    const unknown = expressions.flatMap((e) =>
      metricNames(e.expr)
        .filter((n) => !known.has(n))
        .map((n) => `${e.name}: ${n}`),
    );
    expect(unknown).toEqual([]);
    // and each expression selects at least one metric (vector(0.99) in the rules is the exception)
    for (const e of expressions.filter((x) => x.source === 'dashboard')) {
      expect(metricNames(e.expr).length, e.name).toBeGreaterThan(0);
    }
  });

  describe('promtool parses every dashboard expression', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'oi-dashboard-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('as recording rules in a temporary rules file', () => {
      const rules = dashboardExpressions(dashboard).map((e, i) => ({
        record: `dashboard:expr_${i}:panel_${e.panelId ?? 0}_${e.refId ?? 'X'}`,
        expr: e.expr,
      }));
      const file = path.join(dir, 'dashboard.rules.yml');
      writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules }] }, { lineWidth: 0 }));
      const r = promtool('check', 'rules', file);
      expect(r.status, r.output).toBe(0);
      expect(r.stdout).toContain(`SUCCESS: ${rules.length} rules found`);
    });

    it('a syntax error does fail the check', () => {
      const file = path.join(dir, 'broken.rules.yml');
      writeFileSync(
        file,
        stringify({ groups: [{ name: 'broken', rules: [{ record: 'x:y', expr: 'sum(rate(up[5m])' }] }] }),
      );
      expect(promtool('check', 'rules', file).status).not.toBe(0);
    });
  });
});
