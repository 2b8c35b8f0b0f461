// Generates the Prometheus recording and alerting rules of the SLOs from deploy/slo.yaml.
//
//   npx tsx scripts/generate-slo-rules.ts            writes deploy/prometheus/rules/slo.rules.yml
//   npx tsx scripts/generate-slo-rules.ts --check    exits 1 if the committed file is stale
//
// generateRules() is pure (text in, text out) so test/deploy/rules.test.ts can compare its output
// with the committed file.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Document, parse } from 'yaml';
import { z } from 'zod';
import { parseCommandLine } from '../src/cli/args.js';

export const STAGES = ['source', 'landing', 'bronze', 'silver', 'gold', 'staging', 'api'] as const;
export type Stage = (typeof STAGES)[number];

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SLO_FILE = path.join(REPO_ROOT, 'deploy', 'slo.yaml');
export const RULES_FILE = path.join(REPO_ROOT, 'deploy', 'prometheus', 'rules', 'slo.rules.yml');

const DURATION_RE = /^([0-9]+)(s|m|h|d|w)$/;
const DURATION_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

const duration = z.string().regex(DURATION_RE, 'a Prometheus duration such as 5m, 1h or 30d');
const selector = z
  .string()
  .trim()
  .regex(
    /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^{}]*\})?$/,
    'a series selector: metric_name{label="value",...}',
  );
const severity = z.enum(['page', 'ticket']);
const sloName = z.string().regex(/^[a-z][a-z0-9_]*$/, 'lower-case letters, digits and _');

const sloSchema = z
  .object({
    description: z.string().min(1),
    objective: z.number().gt(0).lt(1),
    window: duration,
    good: selector,
    // Several selectors add up: e.g. requests answered plus requests refused before routing.
    total: z.union([selector, z.array(selector).min(1)]).transform((value) => (typeof value === 'string' ? [value] : value)),
  })
  .strict();

const stageBudgets = z
  .object(
    Object.fromEntries(STAGES.map((s) => [s, z.number().int().positive()])) as Record<
      Stage,
      z.ZodNumber
    >,
  )
  .strict();

export const sloConfigSchema = z
  .object({
    job: z.string().min(1),
    slos: z
      .record(sloName, sloSchema)
      .refine((r) => Object.keys(r).length > 0, 'define at least one SLO'),
    burn_rate_alerts: z
      .array(
        z
          .object({ severity, long: duration, short: duration, factor: z.number().positive() })
          .strict()
          .refine((a) => toSeconds(a.short) < toSeconds(a.long), 'short must be shorter than long'),
      )
      .min(1),
    pipeline: z
      .object({
        stall: z
          .object({ severity, for: duration, stage_budgets_seconds: stageBudgets })
          .strict(),
        no_new_batch: z
          .object({ severity, for: duration, threshold_seconds: z.number().int().positive() })
          .strict(),
      })
      .strict(),
    scrape_down: z.object({ severity, for: duration }).strict(),
  })
  .strict();

export type SloConfig = z.infer<typeof sloConfigSchema>;

export class SloConfigError extends Error {
  override name = 'SloConfigError';
}

export function toSeconds(d: string): number {
  const m = DURATION_RE.exec(d);
  if (!m?.[1] || !m[2]) throw new SloConfigError(`not a duration: ${d}`);
  return Number(m[1]) * (DURATION_SECONDS[m[2]] ?? Number.NaN);
}

/** "2d 2h", "30d", "45m": a rough human duration for the annotations. */
export function humanDuration(seconds: number): string {
  const parts: string[] = [];
  let rest = Math.round(seconds);
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join(' ') || '0s';
}

/** 1 - 0.999 without the binary-float tail (0.001, not 0.0010000000000000009). */
export function errorBudget(objective: number): number {
  return Number((1 - objective).toPrecision(12));
}

function percent(ratio: number): string {
  return `${Number((ratio * 100).toPrecision(12))}%`;
}

function title(name: string): string {
  return name
    .split('_')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');
}

/** Parses and validates slo.yaml; throws SloConfigError with every problem listed. */
export function parseSloConfig(sloYamlText: string): SloConfig {
  let raw: unknown;
  try {
    raw = parse(sloYamlText);
  } catch (err) {
    throw new SloConfigError(`deploy/slo.yaml is not valid YAML: ${(err as Error).message}`);
  }
  const result = sloConfigSchema.safeParse(raw);
  if (!result.success) {
    throw new SloConfigError(`deploy/slo.yaml is invalid:\n${z.prettifyError(result.error)}`);
  }
  return result.data;
}

/** Every window a recording rule is needed for, shortest first. */
export function recordingWindows(config: SloConfig): string[] {
  const windows = new Set<string>();
  for (const a of config.burn_rate_alerts) {
    windows.add(a.long);
    windows.add(a.short);
  }
  return [...windows].sort((a, b) => toSeconds(a) - toSeconds(b));
}

interface RecordingRule {
  record: string;
  expr: string;
  labels?: Record<string, string>;
}
interface AlertingRule {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}
interface RuleGroup {
  name: string;
  interval?: string;
  rules: (RecordingRule | AlertingRule)[];
}

const RUNBOOK = 'docs/monitoring.md#slos-and-alerting';

function errorRatioExpr(good: string, total: readonly string[], window: string): string {
  // `or vector(0)`: when every request is bad the good series may not exist at all, and the error
  // ratio must then be 1, not empty. The same for every total after the first: a counter that
  // has not appeared yet must not make the whole total empty.
  const [first, ...more] = total;
  const totalExpr = [`sum(rate(${first}[${window}]))`, ...more.map((t) => `(sum(rate(${t}[${window}])) or vector(0))`)].join(' + ');
  const denominator = more.length === 0 ? totalExpr : `(${totalExpr})`;
  return `1 - ((sum(rate(${good}[${window}])) or vector(0)) / ${denominator})`;
}

function sloGroups(config: SloConfig): RuleGroup[] {
  const windows = recordingWindows(config);
  const sli: RecordingRule[] = [];
  const budget: RecordingRule[] = [];
  const alerts: AlertingRule[] = [];
  for (const [name, slo] of Object.entries(config.slos)) {
    const labels = { slo: name };
    const eb = errorBudget(slo.objective);
    for (const w of windows) {
      sli.push({
        record: `slo:sli_error:ratio_rate${w}`,
        expr: errorRatioExpr(slo.good, slo.total, w),
        labels,
      });
    }
    budget.push(
      { record: 'slo:objective:ratio', expr: `vector(${slo.objective})`, labels },
      {
        record: `slo:sli_error:ratio_rate${slo.window}`,
        expr: errorRatioExpr(slo.good, slo.total, slo.window),
        labels,
      },
      {
        record: 'slo:error_budget_remaining:ratio',
        expr: `1 - (slo:sli_error:ratio_rate${slo.window}{slo="${name}"} / ${eb})`,
        labels,
      },
    );
    for (const a of config.burn_rate_alerts) {
      const threshold = `(${a.factor} * ${eb})`;
      const exhausted = humanDuration(toSeconds(slo.window) / a.factor);
      alerts.push({
        alert: `${title(name)}ErrorBudgetBurn`,
        expr:
          `slo:sli_error:ratio_rate${a.long}{slo="${name}"} > ${threshold}` +
          ` and slo:sli_error:ratio_rate${a.short}{slo="${name}"} > ${threshold}`,
        labels: {
          severity: a.severity,
          long_window: a.long,
          short_window: a.short,
          burn_rate: String(a.factor),
        },
        annotations: {
          summary: `${name} SLO: error budget burning ${a.factor}x faster than sustainable (${a.long} and ${a.short} windows)`,
          description:
            `The ${name} SLO (${percent(slo.objective)} of ${slo.description}, over ${slo.window}) ` +
            `had an error ratio of {{ $value | humanizePercentage }} over the last ${a.long}, ` +
            `and over the last ${a.short} it was also above ${a.factor} x the ${percent(eb)} budget. ` +
            `At this rate the whole ${slo.window} error budget is gone in ${exhausted}.`,
          runbook: RUNBOOK,
        },
      });
    }
  }
  // The burn-rate alerts share the group of the ratios they read: rules of one group run in order,
  // so an alert always sees the ratios of the same evaluation (groups run concurrently, and in
  // promtool unit tests in random order).
  return [
    { name: 'order-items-slo', rules: [...sli, ...alerts] },
    { name: 'order-items-slo-budget', interval: '5m', rules: budget },
  ];
}

function pipelineGroup(config: SloConfig): RuleGroup {
  const job = `job="${config.job}"`;
  const { stall, no_new_batch: noBatch } = config.pipeline;
  // Data requests served (the freshness SLO's total): a staged batch nobody asked for is idle, not
  // stalled, so stage api only stalls while such requests keep coming in.
  const freshnessSlo = config.slos.freshness;
  if (freshnessSlo === undefined) throw new Error('slo.yaml: slos.freshness is needed (its total counts the data requests served)');
  const served = freshnessSlo.total.map((selector) => `sum by (job) (increase(${selector}[${stall.stage_budgets_seconds.api}s]))`).join(' + ');
  const rules: AlertingRule[] = STAGES.map((stage) => {
    const budget = stall.stage_budgets_seconds[stage];
    const running = `order_items_pipeline_stage_running_seconds{${job},stage="${stage}"} > ${budget}`;
    return {
      alert: 'OrderItemsPipelineStageStalled',
      expr: stage === 'api' ? `${running} and on (job) (${served}) > 0` : running,
      for: stall.for,
      labels: { severity: stall.severity, stage },
      annotations: {
        summary:
          stage === 'api'
            ? `A staged batch has waited longer than ${humanDuration(budget)} to be served`
            : `Pipeline stage ${stage} has been running longer than its ${humanDuration(budget)} budget`,
        description:
          (stage === 'api'
            ? // The API's stage is written when a batch is first served: what is measured is how
              // long the oldest staged batch has waited for it.
              `The oldest staged batch has not been served for {{ $value | humanizeDuration }} since its staging ended `
            : `The oldest unfinished ${stage} stage started {{ $value | humanizeDuration }} ago `) +
          `(budget ${humanDuration(budget)}), on {{ $labels.instance }}. ` +
          `Batches queue up behind it and freshness degrades.`,
        runbook: RUNBOOK,
      },
    };
  });
  const freshness = `order_items_freshness_seconds{${job}}`;
  rules.push(
    {
      alert: 'OrderItemsNoNewBatch',
      expr:
        `label_replace(${freshness} > ${noBatch.threshold_seconds}, "reason", "stale", "", "")` +
        ` or label_replace(absent(${freshness}), "reason", "absent", "", "")`,
      for: noBatch.for,
      labels: { severity: noBatch.severity },
      annotations: {
        summary: `No new order-items batch staged for over ${humanDuration(noBatch.threshold_seconds)}`,
        description:
          `{{ if eq $labels.reason "absent" }}order_items_freshness_seconds is missing: no batch has ` +
          `been staged yet, or the API is not scraped or has not read the monitoring table.{{ else }}The newest staged batch was ` +
          `ingested {{ $value | humanizeDuration }} ago on {{ $labels.instance }} (threshold ` +
          `${humanDuration(noBatch.threshold_seconds)}).{{ end }} Every request now serves old data.`,
        runbook: RUNBOOK,
      },
    },
    {
      alert: 'OrderItemsScrapeDown',
      expr: `up{${job}} == 0`,
      for: config.scrape_down.for,
      labels: { severity: config.scrape_down.severity },
      annotations: {
        summary: `Prometheus cannot scrape ${config.job} on {{ $labels.instance }}`,
        description:
          `The metrics listener of {{ $labels.instance }} has not answered a scrape for ` +
          `${config.scrape_down.for}. The API may be down, and no SLO alert can fire while it is not scraped.`,
        runbook: RUNBOOK,
      },
    },
  );
  return { name: 'order-items-pipeline-alerts', rules };
}

export const GENERATED_HEADER = [
  ' Generated by scripts/generate-slo-rules.ts from deploy/slo.yaml. DO NOT EDIT.',
  ' Change deploy/slo.yaml, then run: npx tsx scripts/generate-slo-rules.ts',
].join('\n');

/** The rules file for the given slo.yaml text. Deterministic: same input, same bytes. */
export function generateRules(sloYamlText: string): string {
  const config = parseSloConfig(sloYamlText);
  const doc = new Document(
    { groups: [...sloGroups(config), pipelineGroup(config)] },
    { aliasDuplicateObjects: false },
  );
  doc.commentBefore = GENERATED_HEADER;
  return doc.toString({ lineWidth: 0 });
}

function main(argv: string[]): number {
  const check = argv.includes('--check');
  let text: string;
  try {
    text = generateRules(readFileSync(SLO_FILE, 'utf8'));
  } catch (err) {
    if (err instanceof SloConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
  const rel = path.relative(process.cwd(), RULES_FILE);
  if (check) {
    let current = '';
    try {
      current = readFileSync(RULES_FILE, 'utf8');
    } catch {
      // missing counts as stale
    }
    if (current !== text) {
      process.stderr.write(`${rel} is stale: run npx tsx scripts/generate-slo-rules.ts\n`);
      return 1;
    }
    process.stdout.write(`${rel} is up to date\n`);
    return 0;
  }
  writeFileSync(RULES_FILE, text);
  process.stdout.write(`wrote ${rel}\n`);
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  parseCommandLine(
    'npm run slo:rules --',
    { options: { check: { type: 'boolean' } } },
    'writes deploy/prometheus/rules/slo.rules.yml from deploy/slo.yaml; --check only says whether it is stale (exit 1)',
  );
  process.exitCode = main(process.argv.slice(2));
}
