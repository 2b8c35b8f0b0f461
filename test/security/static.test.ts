// Source-level guards that back the black-box tests: SQL text is built only from fixed fragments,
// and the libraries whose old versions had known flaws are at safe versions.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SRC = join(ROOT, 'src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    return statSync(full).isDirectory() ? files(full) : full.endsWith('.ts') ? [full] : [];
  });
}

function version(pkg: string): [number, number, number] {
  const json = JSON.parse(readFileSync(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string };
  const [major, minor, patch] = json.version.split('.').map((part) => Number.parseInt(part, 10));
  return [major ?? 0, minor ?? 0, patch ?? 0];
}
const atLeast = (v: [number, number, number], min: [number, number, number]): boolean =>
  v[0] !== min[0] ? v[0] > min[0] : v[1] !== min[1] ? v[1] > min[1] : v[2] >= min[2];

/** `${...}` expressions inside the template literals of a file (nested braces handled). */
function interpolations(source: string): string[] {
  const found: string[] = [];
  const pattern = /\$\{/g;
  let match: RegExpExecArray | null;
  while ((match = pattern.exec(source)) !== null) {
    let depth = 1;
    let i = match.index + 2;
    while (i < source.length && depth > 0) {
      if (source[i] === '{') depth += 1;
      else if (source[i] === '}') depth -= 1;
      i += 1;
    }
    found.push(source.slice(match.index + 2, i - 1).replace(/\s+/g, ' ').trim());
  }
  return found;
}

// Every interpolation allowed in the SQL-building modules, and why it is safe. A new one must be
// added here on purpose, after checking it is not request input.
const ALLOWED_SQL_FRAGMENTS: Record<string, string> = {
  // order-items / orders repositories: fragments of the read model chosen by READ_MODEL at startup
  'model.statusColumn': 'constant column name of the read model',
  'model.categoryColumn': 'constant column name of the read model',
  'model.sellerPurchaseIndex': 'constant index name of the read model',
  'model.itemColumns': 'constant column list of the read model',
  'this.model.itemColumns': 'constant column list of the read model',
  'this.model.orderColumns': 'constant column list of the read model',
  "model.from(hint)": "constant FROM clause of the read model; hint is constant or empty",
  "this.model.from('')": 'constant FROM clause of the read model',
  'this.model.summaryFrom(groupBy)': 'constant FROM clause of the read model, chosen by an enum',
  predicates: 'fixed " AND col = ?" fragments; values go to params',
  hint: "constant ' FORCE INDEX (...)' or empty, chosen by a condition",
  itemKey: 'constant DATE_FORMAT expression or the read model category column, chosen by an enum',
  dayKey: 'constant DATE_FORMAT expression or category column of the daily totals, chosen by an enum',
  "parts.join(' UNION ALL ')": 'constant SELECTs with ? placeholders (the daily totals, the partial days)',
  "groupBy === 'category' ? 't.bucket IS NULL, t.bucket' : 't.bucket'": 'one of two constants, chosen by an enum',
  'Math.trunc(limit) + 1': 'schema-validated finite integer (1..200), truncated',
  where: 'fixed predicates with ? placeholders',
  totalsRange: 'halfOpenRange(\'d.purchase_date\', …): fixed " AND d.purchase_date >= ?" / "< ?" fragments; values go to params',
  "halfOpenRange('m.purchase_date', days, params)": 'fixed " AND m.purchase_date >= ?" / "< ?" fragments; values go to params',
  selected: "the select list of the marks subquery, a constant each caller writes ('m.purchase_date', MIN/MAX of it, the probe's literals)",
  "marks('m.purchase_date')": 'the marks subquery: constant text with ? placeholders',
  "marks('1, NULL, 0, 0, 0')": 'the marks probe: constant text with ? placeholders',
  first: "marks('MIN(m.purchase_date)'): constant text with ? placeholders",
  last: "marks('MAX(m.purchase_date)'): constant text with ? placeholders",
  STAGE_COLUMNS: 'constant column list',
  "batchIds.map(() => '?').join(', ')": 'one placeholder per id',
  STAGE_PLACEHOLDERS: 'one placeholder per pipeline stage (a constant list)',
  RECENT_BATCHES: 'numeric constant',
  REJECTED_CHUNK_OFFSET: 'numeric constant',
  RECENT_BATCH_OFFSET: 'numeric constant',
  after: "constant 'TRUE' or 's.batch_id > ?', chosen by a condition",
  upTo: "constant ' AND s.batch_id <= ?' or empty",
  // range-predicate.ts
  column: 'a constant column name written by the caller (the interpolations of its callers are checked here too)',
  // database.ts
  '(budgetMs / 1000).toFixed(3)': 'configured number',
  'Math.round(budgetMs)': 'configured number',
  'this.deadlineMs': 'configured number, in an error message',
  applied: 'a COUNT(*) the server returned, in an error message',
  requiredMigrations: "the journal's migration count, in an error message",
  sql: 'the statement text itself, wrapped with a time budget',
};
const SQL_MODULES = files(SRC).filter(
  (f) => /repository\.ts$/.test(f) || f.endsWith(join('db', 'database.ts')) || f.endsWith(join('db', 'range-predicate.ts')),
);

describe('SQL is built from allowlisted fragments only', () => {
  it('finds the SQL modules (guard)', () => {
    expect(SQL_MODULES.length).toBeGreaterThanOrEqual(4);
  });

  it('no sql.raw, no query builder escape hatch, no string-concatenated request values in src/', () => {
    for (const file of files(SRC)) {
      const text = readFileSync(file, 'utf8');
      expect(text, relative(ROOT, file)).not.toMatch(/sql\.raw\(/);
      expect(text, relative(ROOT, file)).not.toMatch(/\bmultipleStatements:\s*true/);
      // request.query/params/body must never appear inside a template literal or string concatenation.
      expect(text, relative(ROOT, file)).not.toMatch(/\$\{[^}]*request\.(query|params|body|headers)/);
      expect(text, relative(ROOT, file)).not.toMatch(/['"`]\s*\+\s*request\.(query|params|body)/);
    }
  });

  it.each(SQL_MODULES.map((f) => [relative(ROOT, f), f]))('%s interpolates only allowlisted fragments', (_name, file) => {
    const unexpected = interpolations(readFileSync(file, 'utf8'))
      // Messages of thrown errors are not SQL.
      .filter((expr) => !(expr in ALLOWED_SQL_FRAGMENTS));
    expect(unexpected).toEqual([]);
  });

  it('the tenant repositories pass sellerIdOf(scope) to every statement they run', () => {
    for (const file of SQL_MODULES.filter((f) => /order-items|orders/.test(f))) {
      const text = readFileSync(file, 'utf8');
      const statements = (text.match(/db\.select</g) ?? []).length;
      expect(statements, relative(ROOT, file)).toBeGreaterThan(0);
      expect((text.match(/sellerIdOf\(scope\)/g) ?? []).length, relative(ROOT, file)).toBeGreaterThanOrEqual(statements);
      expect((text.match(/WHERE i\.seller_id = \?|const where = `i\.seller_id = \?/g) ?? []).length, relative(ROOT, file)).toBeGreaterThanOrEqual(statements);
    }
  });
});

describe('the benchmark baseline cannot be reached by a deployment', () => {
  it('no code outside bench/ sets benchmarkWithoutAuthAndMetricsAsSeller, and no environment variable reaches it', () => {
    for (const dir of ['src', 'scripts', 'test'].map((d) => join(ROOT, d))) {
      for (const file of files(dir)) {
        if (file.endsWith('static.test.ts')) continue;
        const text = readFileSync(file, 'utf8');
        expect(text, relative(ROOT, file)).not.toMatch(/benchmarkWithoutAuthAndMetricsAsSeller\s*:\s*[^?]/);
      }
    }
    expect(readFileSync(join(SRC, 'server.ts'), 'utf8')).not.toMatch(/benchmarkWithout/);
    expect(readFileSync(join(SRC, 'config.ts'), 'utf8')).not.toMatch(/benchmarkWithout/);
  });
});

describe('dependency versions', () => {
  it('mysql2 is 3.17 or later', () => {
    expect(atLeast(version('mysql2'), [3, 17, 0])).toBe(true);
  });
  it('fast-jwt is 6.3.1 or later', () => {
    expect(atLeast(version('fast-jwt'), [6, 3, 1])).toBe(true);
  });
  it('@fastify/jwt resolves the same fast-jwt (no older nested copy)', () => {
    const nested = join(ROOT, 'node_modules', '@fastify', 'jwt', 'node_modules', 'fast-jwt', 'package.json');
    let nestedVersion: string | null = null;
    try {
      nestedVersion = (JSON.parse(readFileSync(nested, 'utf8')) as { version: string }).version;
    } catch {
      nestedVersion = null;
    }
    if (nestedVersion !== null) expect(atLeast(nestedVersion.split('.').map(Number) as [number, number, number], [6, 3, 1])).toBe(true);
  });
});
