// The database ceiling: a bare mysql2 loop running the API's exact statements (captured from the
// app itself, wrapped in the same time budget, sent with execute() as the app does, on a pool
// with the app's options) at the same concurrency, in its own process so its event loop is not
// the load generator's. Usage: node db-ceiling.js <spec.json>; prints one JSON result line.
import { readFileSync } from 'node:fs';
import { createPool } from '../src/db/client.js';
import { withTimeBudget, type SqlValue } from '../src/db/database.js';

export interface DbCeilingSpec {
  databaseUrl: string;
  concurrency: number;
  durationSeconds: number;
  queryTimeoutMs: number;
  /** Rotated through by all loops, like the load generator rotates through URLs. */
  statements: { sql: string; params: SqlValue[] }[];
}

export interface LoopResult {
  requests: number;
  errors: number;
  seconds: number;
  latenciesMs: number[];
}

async function main(): Promise<void> {
  const specPath = process.argv[2];
  if (specPath === undefined) throw new Error('usage: db-ceiling <spec.json>');
  const spec = JSON.parse(readFileSync(specPath, 'utf8')) as DbCeilingSpec;
  const pool = createPool(spec.databaseUrl, { connectionLimit: spec.concurrency });
  const statements = spec.statements.map((s) => ({ sql: withTimeBudget('mariadb', s.sql, spec.queryTimeoutMs), params: s.params }));
  let next = 0;
  let errors = 0;
  const latencies: number[] = [];
  // Warm every connection (and its prepared statements) before the clock starts.
  await Promise.all(
    Array.from({ length: spec.concurrency }, async () => {
      // A warm-up statement over its time budget is counted in the run, not fatal here.
      for (const s of statements.slice(0, 5)) await pool.execute(s.sql, s.params).catch(() => undefined);
    }),
  );
  const started = performance.now();
  const deadline = started + spec.durationSeconds * 1000;
  await Promise.all(
    Array.from({ length: spec.concurrency }, async () => {
      while (performance.now() < deadline) {
        const statement = statements[next++ % statements.length];
        if (statement === undefined) break;
        const t0 = performance.now();
        try {
          const connection = await pool.getConnection();
          try {
            await connection.execute({ sql: statement.sql, timeout: spec.queryTimeoutMs + 1000 }, statement.params);
          } finally {
            connection.release();
          }
          latencies.push(performance.now() - t0);
        } catch {
          errors += 1;
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await pool.end();
  const result: LoopResult = { requests: latencies.length, errors, seconds, latenciesMs: latencies };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main();
