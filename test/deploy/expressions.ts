// Every PromQL expression the deployment ships: the Grafana dashboard's targets and the generated
// Prometheus rules, with Grafana's macros ($__rate_interval, $__range, ...) replaced by concrete
// durations so each one can be parsed by promtool or evaluated against a real Prometheus.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { z } from 'zod';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DASHBOARD_FILE = path.join(REPO_ROOT, 'deploy', 'grafana', 'order-items-slo.json');
export const RULES_DIR = path.join(REPO_ROOT, 'deploy', 'prometheus', 'rules');
export const RULES_FILE = path.join(RULES_DIR, 'slo.rules.yml');

export interface PromExpression {
  /** Where it comes from. */
  source: 'dashboard' | 'rules';
  /** dashboard: `panel <id> "<title>" target <refId>`; rules: `<group>/<record or alert>`. */
  name: string;
  /** The expression as written in the file. */
  raw: string;
  /** The expression with Grafana macros substituted: valid PromQL. */
  expr: string;
  /** Grafana panel id, for dashboard expressions. */
  panelId?: number;
  /** Grafana target refId, for dashboard expressions. */
  refId?: string;
  /** Recording rule name (`record`), for recording rules. */
  record?: string;
  /** Alert name, for alerting rules. */
  alert?: string;
}

export interface GrafanaMacroValues {
  /** $__interval; also the step a caller should evaluate range queries with. */
  interval: string;
  /** $__rate_interval: Grafana uses max($__interval + scrape interval, 4 x scrape interval). */
  rateInterval: string;
  /** $__range: the dashboard's time range. */
  range: string;
}

export const DEFAULT_MACRO_VALUES: GrafanaMacroValues = {
  interval: '15s',
  rateInterval: '1m',
  range: '6h',
};

const DURATION_RE = /^([0-9]+)(ms|s|m|h|d|w)$/;
const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

export function durationMs(d: string): number {
  const m = DURATION_RE.exec(d);
  const unit = m?.[2] ? UNIT_MS[m[2]] : undefined;
  if (!m?.[1] || unit === undefined) throw new Error(`not a duration: ${d}`);
  return Number(m[1]) * unit;
}

/** Replaces Grafana's global macros, in both `$__x` and `${__x}` spelling. */
export function substituteGrafanaMacros(
  expr: string,
  values: GrafanaMacroValues = DEFAULT_MACRO_VALUES,
): string {
  const replacements: Record<string, string> = {
    __rate_interval: values.rateInterval,
    __interval: values.interval,
    __interval_ms: String(durationMs(values.interval)),
    __range: values.range,
    __range_s: String(Math.round(durationMs(values.range) / 1000)),
    __range_ms: String(durationMs(values.range)),
  };
  return expr.replace(/\$\{(__[a-z_]+)\}|\$(__[a-z_]+)/g, (whole, braced?: string, bare?: string) => {
    const key = braced ?? bare ?? '';
    const value = replacements[key];
    if (value === undefined) throw new Error(`unknown Grafana macro ${whole} in: ${expr}`);
    return value;
  });
}

// --- dashboard -------------------------------------------------------------------------------

const datasourceSchema = z.looseObject({ type: z.string().optional(), uid: z.string().optional() });

export const targetSchema = z.looseObject({
  refId: z.string().optional(),
  expr: z.string().optional(),
  datasource: datasourceSchema.optional(),
});
export type DashboardTarget = z.infer<typeof targetSchema>;

export interface DashboardPanel {
  id?: number | undefined;
  type: string;
  title?: string | undefined;
  datasource?: z.infer<typeof datasourceSchema> | null | undefined;
  targets?: DashboardTarget[] | undefined;
  gridPos?: { x: number; y: number; w: number; h: number } | undefined;
  panels?: DashboardPanel[] | undefined;
}

export const panelSchema: z.ZodType<DashboardPanel> = z.lazy(() =>
  z.looseObject({
    id: z.number().int().optional(),
    type: z.string(),
    title: z.string().optional(),
    datasource: datasourceSchema.nullable().optional(),
    targets: z.array(targetSchema).optional(),
    gridPos: z.object({ x: z.number(), y: z.number(), w: z.number(), h: z.number() }).optional(),
    panels: z.array(panelSchema).optional(),
  }),
);

export const dashboardSchema = z.looseObject({
  uid: z.string(),
  title: z.string(),
  schemaVersion: z.number().int(),
  panels: z.array(panelSchema),
  templating: z
    .looseObject({ list: z.array(z.looseObject({ name: z.string(), type: z.string() })) })
    .optional(),
});
export type Dashboard = z.infer<typeof dashboardSchema>;

export function loadDashboard(file: string = DASHBOARD_FILE): Dashboard {
  return dashboardSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
}

/** All panels, rows included, with the panels of collapsed rows flattened in. */
export function flattenPanels(panels: readonly DashboardPanel[]): DashboardPanel[] {
  return panels.flatMap((p) => [p, ...flattenPanels(p.panels ?? [])]);
}

export function dashboardExpressions(
  dashboard: Dashboard = loadDashboard(),
  values: GrafanaMacroValues = DEFAULT_MACRO_VALUES,
): PromExpression[] {
  const out: PromExpression[] = [];
  for (const panel of flattenPanels(dashboard.panels)) {
    for (const target of panel.targets ?? []) {
      if (target.expr === undefined || target.expr.trim() === '') continue;
      out.push({
        source: 'dashboard',
        name: `panel ${panel.id ?? '?'} "${panel.title ?? ''}" target ${target.refId ?? '?'}`,
        raw: target.expr,
        expr: substituteGrafanaMacros(target.expr, values),
        ...(panel.id === undefined ? {} : { panelId: panel.id }),
        ...(target.refId === undefined ? {} : { refId: target.refId }),
      });
    }
  }
  return out;
}

// --- rules -----------------------------------------------------------------------------------

export const ruleSchema = z.looseObject({
  record: z.string().optional(),
  alert: z.string().optional(),
  expr: z.union([z.string(), z.number()]).transform(String),
  for: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
export const rulesFileSchema = z.object({
  groups: z.array(
    z.looseObject({ name: z.string(), interval: z.string().optional(), rules: z.array(ruleSchema) }),
  ),
});
export type RulesFile = z.infer<typeof rulesFileSchema>;

export function loadRules(file: string = RULES_FILE): RulesFile {
  return rulesFileSchema.parse(parse(readFileSync(file, 'utf8')));
}

export function ruleExpressions(rules: RulesFile = loadRules()): PromExpression[] {
  return rules.groups.flatMap((g) =>
    g.rules.map((r) => ({
      source: 'rules' as const,
      name: `${g.name}/${r.record ?? r.alert ?? '?'}`,
      raw: r.expr,
      expr: r.expr,
      ...(r.record === undefined ? {} : { record: r.record }),
      ...(r.alert === undefined ? {} : { alert: r.alert }),
    })),
  );
}

/** Every expression of the dashboard and of the generated rules file. */
export function allExpressions(values: GrafanaMacroValues = DEFAULT_MACRO_VALUES): PromExpression[] {
  return [...dashboardExpressions(loadDashboard(), values), ...ruleExpressions(loadRules())];
}

// --- metric names ----------------------------------------------------------------------------

const HISTOGRAMS = [
  'http_request_duration_seconds',
  'db_query_duration_seconds',
  'order_items_e2e_latency_seconds',
];

/** The metrics the app exposes (see the brief of src/ metrics), histogram series spelled out. */
export const APP_METRIC_NAMES: readonly string[] = [
  ...HISTOGRAMS.flatMap((h) => [`${h}_bucket`, `${h}_sum`, `${h}_count`]),
  'order_items_pipeline_stage_duration_seconds',
  'order_items_pipeline_stage_lag_seconds',
  'order_items_pipeline_stage_running_seconds',
  'order_items_batch_first_served_seconds',
  'order_items_freshness_seconds',
  'order_items_last_staged_batch_timestamp_seconds',
  'etl_rejected_rows_total',
  'http_requests_shed_total',
  'http_admitted_ratio',
];

/** Prometheus' own series and the prom-client default metrics that dashboards may use. */
export const STANDARD_METRIC_NAMES: readonly string[] = [
  'up',
  'scrape_duration_seconds',
  'process_cpu_seconds_total',
  'process_cpu_user_seconds_total',
  'process_cpu_system_seconds_total',
  'process_start_time_seconds',
  'process_resident_memory_bytes',
  'process_virtual_memory_bytes',
  'process_heap_bytes',
  'process_open_fds',
  'process_max_fds',
  'nodejs_eventloop_lag_seconds',
  'nodejs_eventloop_lag_p50_seconds',
  'nodejs_eventloop_lag_p99_seconds',
  'nodejs_heap_size_total_bytes',
  'nodejs_heap_size_used_bytes',
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
];

const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'atan2',
  'inf',
  'nan',
]);

/**
 * The metric names a PromQL expression selects. A lexical scan, not a parser: strings, label
 * matchers, ranges, grouping clauses and numbers are blanked out, and of the identifiers left
 * those followed by `(` are functions or aggregations.
 */
export function metricNames(expr: string): string[] {
  let s = expr;
  s = s.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ');
  s = s.replace(/\{[^}]*\}/g, ' ');
  s = s.replace(/\[[^\]]*\]/g, ' ');
  s = s.replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, ' ');
  s = s.replace(/(?<![A-Za-z0-9_:.])(?:0x[0-9a-f]+|[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)(?:ms|s|m|h|d|w|y)*/gi, ' ');
  const names = new Set<string>();
  for (const m of s.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const word = m[0];
    const after = s.slice((m.index ?? 0) + word.length).trimStart();
    if (after.startsWith('(')) continue;
    if (KEYWORDS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  return [...names].sort();
}
