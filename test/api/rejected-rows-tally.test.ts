// etl_rejected_rows_total without re-reading the monitoring table's whole history per refresh
// (audit: the full SUM took seconds at 250k batches and then failed on every tick).
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RejectedRowsTally, SETTLED_REFRESH_MS } from '../../src/modules/pipeline/rejected-rows-tally.js';
import { RECENT_BATCHES } from '../../src/modules/pipeline/repository.js';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

let db: TestDatabase;
let app: FastifyInstance;

beforeAll(async () => {
  db = await createTestDatabase('rejected_tally');
  app = await buildTestApp(db.url);
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

/** `count` batches named `<prefix><n>`, ingested at `from` + n minutes, each with a landing and a silver stage. */
async function addBatches(prefix: string, count: number, from: string, rejected: { landing: number; silver: number }): Promise<void> {
  await db.pool.query(
    `INSERT INTO etl_batch (batch_id, source, created_at, status)
     SELECT CONCAT(?, seq), 'test', ? + INTERVAL seq MINUTE, 'succeeded' FROM seq_1_to_${count}`,
    [prefix, from],
  );
  await db.pool.query(
    `INSERT INTO etl_batch_stage (batch_id, stage, started_at, finished_at, rows_rejected, status)
     SELECT CONCAT(?, seq), st.stage, ? + INTERVAL seq MINUTE, ? + INTERVAL seq MINUTE + INTERVAL 1 SECOND, st.rejected, 'succeeded'
       FROM seq_1_to_${count} JOIN (SELECT 'landing' AS stage, ? AS rejected UNION ALL SELECT 'silver', ?) st`,
    [prefix, from, from, rejected.landing, rejected.silver],
  );
}

/** The table's SUM over the stage rows of the batches etl_batch holds (a stage row without its batch is not counted). */
async function sqlTotals(): Promise<Record<string, number>> {
  const [rows] = await db.pool.query(
    'SELECT s.stage, SUM(s.rows_rejected) AS total FROM etl_batch_stage s JOIN etl_batch b ON b.batch_id = s.batch_id GROUP BY s.stage',
  );
  return Object.fromEntries((rows as { stage: string; total: string }[]).map((r) => [r.stage, Number(r.total)]));
}

describe('RejectedRowsTally', () => {
  it('when the history spans several chunks, then the first totals equal the SUM over every row', async () => {
    // 2 × 30,000 stage rows: more than one 50,000-row chunk, with a chunk boundary inside the data.
    await addBatches('old-', 30_000, '2024-01-01 00:00:00', { landing: 1, silver: 2 });
    const tally = new RejectedRowsTally(app.db);
    const totals = await tally.totals();
    expect(Object.fromEntries(totals)).toEqual(await sqlTotals());
    expect(totals.get('landing')).toBe(30_000);
  });

  it('when refreshes overlap the first sum, then they share it (one pass over the table) and agree', async () => {
    const chunkStatements = async (): Promise<number> => {
      const text = await app.metrics.registry.metrics();
      const line = text.split('\n').find((l) => l.startsWith('db_query_duration_seconds_count{query="rejectedRowsChunk"}'));
      return Number(line?.split(' ').at(-1) ?? 0);
    };
    const before = await chunkStatements();
    await new RejectedRowsTally(app.db).totals();
    const onePass = (await chunkStatements()) - before;
    expect(onePass).toBeGreaterThanOrEqual(2);

    const tally = new RejectedRowsTally(app.db);
    const [first, second] = await Promise.all([tally.totals(), tally.totals()]);
    expect((await chunkStatements()) - before - onePass).toBe(onePass);
    expect(Object.fromEntries(first)).toEqual(await sqlTotals());
    expect(Object.fromEntries(second)).toEqual(Object.fromEntries(first));
  });

  // Audit: a tally that carried rows from one read to the next counted rows twice (a count that
  // fell to 0 and rose again, a batch re-entering the newest ones, overlapping refreshes).
  it('after start-up, the totals equal the table SUM through every kind of change', async () => {
    let now = Date.now();
    const tally = new RejectedRowsTally(app.db, () => now);
    const agrees = async (): Promise<void> => expect(Object.fromEntries(await tally.totals())).toEqual(await sqlTotals());
    await agrees();

    await addBatches('new-', 5, '2026-01-01 00:00:00', { landing: 7, silver: 0 });
    await agrees();
    // A running stage's count falls to nothing, then rises again.
    await db.pool.query("UPDATE etl_batch_stage SET rows_rejected = 50 WHERE batch_id = 'new-1' AND stage = 'landing'");
    await agrees();
    await db.pool.query("UPDATE etl_batch_stage SET rows_rejected = NULL WHERE batch_id = 'new-1' AND stage = 'landing'");
    await agrees();
    await db.pool.query("UPDATE etl_batch_stage SET rows_rejected = 10 WHERE batch_id = 'new-1' AND stage = 'landing'");
    await agrees();

    // Newer batches push new-* behind the newest RECENT_BATCHES, then the newest are deleted.
    await addBatches('newer-', RECENT_BATCHES, '2026-06-01 00:00:00', { landing: 1, silver: 0 });
    await agrees();
    await db.pool.query("DELETE FROM etl_batch_stage WHERE batch_id IN ('newer-1000', 'newer-999')");
    await db.pool.query("DELETE FROM etl_batch WHERE batch_id IN ('newer-1000', 'newer-999')");
    await agrees();
    await Promise.all([tally.totals(), tally.totals(), agrees()]);

    // A stage row without its batch counts nowhere; once its batch appears (here among the newest),
    // it counts once (audit: it was in the settled sum and then in the recent one too).
    await db.pool.query(
      "INSERT INTO etl_batch_stage (batch_id, stage, started_at, finished_at, rows_rejected, status) VALUES ('orphan-1', 'gold', '2026-01-01', '2026-01-01', 500, 'succeeded')",
    );
    await agrees();
    await db.pool.query("INSERT INTO etl_batch (batch_id, source, created_at, status) VALUES ('orphan-1', 'sql', '2027-01-01', 'succeeded')");
    await agrees();
    // An id that sorts below '' under the PAD SPACE collation is still in the chunks.
    await db.pool.query("INSERT INTO etl_batch (batch_id, source, created_at, status) VALUES ('\tlow', 'sql', '2019-01-01', 'succeeded')");
    await db.pool.query(
      "INSERT INTO etl_batch_stage (batch_id, stage, started_at, finished_at, rows_rejected, status) VALUES ('\tlow', 'gold', '2019-01-01', '2019-01-01', 70, 'succeeded')",
    );

    // Rows behind the newest batches (a backfilled old batch, the low id) are summed again every SETTLED_REFRESH_MS.
    await addBatches('backfill-', 1, '2020-01-01 00:00:00', { landing: 1000, silver: 0 });
    const seen = Object.fromEntries(await tally.totals());
    expect(seen.landing).toBeLessThan((await sqlTotals()).landing ?? 0);
    now += SETTLED_REFRESH_MS;
    await tally.totals(); // starts the new sum, answers from the previous one
    const sorted = (totals: Record<string, number>): string => JSON.stringify(Object.entries(totals).sort());
    for (let i = 0; i < 50 && sorted(Object.fromEntries(await tally.totals())) !== sorted(await sqlTotals()); i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await agrees();
  });

});
