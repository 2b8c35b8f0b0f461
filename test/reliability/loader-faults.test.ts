// The loader CLI under faults: SIGKILLed at several points of a batch, its database killed under
// it, and two batches loaded at once. Whatever happened, the next run must converge to exactly
// the content of a clean run (same rows, no duplicate, none lost; batch ids and timestamps
// aside), and no interrupted batch may ever read `succeeded`.
import { spawn } from 'node:child_process';
import { readFile, writeFile, mkdir, copyFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDataset } from '../../src/generate/generate.js';
import { FILES } from '../../src/loader/contract.js';
import { migrateDatabase } from '../../src/db/migrate.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { PrivateMariaDb } from '../helpers/private-mariadb.js';
import { repoRoot } from './server-process.js';

interface LoaderRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the loader CLI. With `killWhen`, SIGKILLs it `afterMs` after the first stderr line that
 * matches (the loader's progress log marks where in the batch it is).
 */
function runLoader(
  databaseUrl: string,
  dir: string,
  options: { ingestedAt?: string; killWhen?: RegExp; afterMs?: number; onLine?: (line: string) => void; extraArgs?: string[] } = {},
): Promise<LoaderRun> {
  return new Promise((resolve, reject) => {
    const args = ['--import', 'tsx', 'src/loader/cli.ts', '--dir', dir, '--chunk-size', '500'];
    if (options.ingestedAt !== undefined) args.push('--ingested-at', options.ingestedAt);
    if (options.extraArgs !== undefined) args.push(...options.extraArgs);
    const child = spawn(process.execPath, args, {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', DATABASE_URL: databaseUrl },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let armed = false;
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      stderr += text;
      for (const line of text.split('\n')) {
        if (line !== '') options.onLine?.(line);
        if (!armed && options.killWhen?.test(line)) {
          armed = true;
          setTimeout(() => child.kill('SIGKILL'), options.afterMs ?? 0);
        }
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Content of every data table, batch bookkeeping columns aside: order-independent checksums. */
async function fingerprint(databaseUrl: string): Promise<Record<string, { rows: number; sum: string; xor: string }>> {
  const conn = await mysql.createConnection({ uri: databaseUrl });
  try {
    const database = new URL(databaseUrl).pathname.slice(1);
    const [columns] = await conn.query<mysql.RowDataPacket[]>(
      `SELECT c.TABLE_NAME AS t, c.COLUMN_NAME AS c FROM information_schema.COLUMNS c
         JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
        WHERE c.TABLE_SCHEMA = ? AND t.TABLE_TYPE = 'BASE TABLE'
          AND c.TABLE_NAME NOT LIKE 'etl\\_%' AND c.TABLE_NAME NOT LIKE '\\_\\_%'
          AND c.COLUMN_NAME NOT IN ('batch_id', 'updated_at')
        ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION`,
      [database],
    );
    const byTable = new Map<string, string[]>();
    for (const row of columns) byTable.set(String(row.t), [...(byTable.get(String(row.t)) ?? []), String(row.c)]);
    const result: Record<string, { rows: number; sum: string; xor: string }> = {};
    for (const [table, cols] of byTable) {
      const text = `CONCAT_WS('|', ${cols.map((c) => `COALESCE(\`${c}\`, '\\\\N')`).join(', ')})`;
      const [rows] = await conn.query<mysql.RowDataPacket[]>(
        `SELECT COUNT(*) AS n, CAST(COALESCE(SUM(CRC32(${text})), 0) AS CHAR) AS s, CAST(BIT_XOR(CRC32(MD5(${text}))) AS CHAR) AS x FROM \`${table}\``,
      );
      result[table] = { rows: Number(rows[0]?.n), sum: String(rows[0]?.s), xor: String(rows[0]?.x) };
    }
    return result;
  } finally {
    await conn.end();
  }
}

async function batches(databaseUrl: string): Promise<{ batch_id: string; status: string }[]> {
  const conn = await mysql.createConnection({ uri: databaseUrl });
  try {
    const [rows] = await conn.query<mysql.RowDataPacket[]>('SELECT batch_id, status FROM etl_batch ORDER BY batch_id');
    return rows.map((r) => ({ batch_id: String(r.batch_id), status: String(r.status) }));
  } finally {
    await conn.end();
  }
}

const ORDERS = 5000;
let folder: string;
let reference: TestDatabase;
let referenceFingerprint: Awaited<ReturnType<typeof fingerprint>>;
const toDrop: TestDatabase[] = [];

beforeAll(async () => {
  folder = path.join(os.tmpdir(), `oi-reliability-loader-${process.pid}`);
  await generateDataset({ out: folder, sellers: 40, orders: ORDERS, seed: 11 });
  reference = await createTestDatabase('loader_ref');
  toDrop.push(reference);
  const clean = await runLoader(reference.url, folder);
  expect(clean.code, clean.stderr).toBe(0);
  referenceFingerprint = await fingerprint(reference.url);
  expect(referenceFingerprint.fact_order_item?.rows).toBeGreaterThan(ORDERS);
}, 120_000);

afterAll(async () => {
  for (const db of toDrop) await db.drop().catch(() => undefined);
  if (folder !== undefined) await rm(folder, { recursive: true, force: true });
});

describe('loader killed at any point (SIGKILL)', () => {
  it('converges to the clean result on the next run; killed batches never read succeeded', async () => {
    const db = await createTestDatabase('loader_kill');
    toDrop.push(db);
    // From "batch started" to the bookkeeping after the last file: each kill lands later.
    const killPoints: [RegExp, number][] = [
      [/batch .* started/, 0],
      [/olist_customers_dataset\.csv: read/, 50],
      [/olist_orders_dataset\.csv: read/, 150],
      [/olist_order_items_dataset\.csv: read/, 0],
    ];
    let kills = 0;
    for (const [killWhen, afterMs] of killPoints) {
      const run = await runLoader(db.url, folder, { killWhen, afterMs });
      if (run.code === 0) continue; // finished before the kill landed: also a valid outcome
      expect(run.signal, `${killWhen.source}: ${run.stderr}`).toBe('SIGKILL');
      kills += 1;
    }
    expect(kills).toBeGreaterThanOrEqual(3);
    const killed = await batches(db.url);
    const rerun = await runLoader(db.url, folder);
    expect(rerun.code, rerun.stderr).toBe(0);
    const { batchId } = JSON.parse(rerun.stdout) as { batchId: string };

    expect(await fingerprint(db.url)).toEqual(referenceFingerprint);
    // Every batch that was killed is visibly unfinished (running) or failed, never succeeded.
    const after = await batches(db.url);
    for (const batch of after) {
      if (batch.batch_id === batchId) expect(batch.status).toBe('succeeded');
      else if (killed.some((k) => k.batch_id === batch.batch_id) && batch.status === 'succeeded') {
        // Only a run that exited 0 may have succeeded; such a run finished before its kill.
        continue;
      } else expect(['running', 'failed']).toContain(batch.status);
    }
    expect(after.filter((b) => b.status !== 'succeeded').length).toBeGreaterThanOrEqual(1);
  }, 120_000);
});

describe('database lost mid-load', () => {
  let server: PrivateMariaDb;
  beforeAll(async () => {
    server = await PrivateMariaDb.start();
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
  });

  it('fails with a clear error and a non-zero exit, and the rerun converges', async () => {
    const url = server.url('oi_loader_lost');
    await migrateDatabase(url);
    let killing: Promise<void> | undefined;
    const run = await runLoader(url, folder, {
      onLine: (line) => {
        if (killing === undefined && /olist_customers_dataset\.csv: read/.test(line)) killing = server.kill();
      },
    });
    await killing;
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^error: (batch \S+ failed|cannot start the batch): .+/m);
    expect(run.stdout).toBe('');

    await server.restart();
    expect((await batches(url)).every((b) => b.status !== 'succeeded')).toBe(true);
    const rerun = await runLoader(url, folder);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(await fingerprint(url)).toEqual(referenceFingerprint);
  }, 120_000);

  it('a load longer than the server\'s wait_timeout succeeds: idle pooled connections are replaced, pings keep the batch lock\'s', async () => {
    const url = server.url('oi_loader_wait_timeout');
    await migrateDatabase(url);
    // Four times the shared folder: a load of several seconds, so that a connection left idle from
    // the first file to the last outlives the server's 1 s wait_timeout.
    const larger = `${folder}-larger`;
    await generateDataset({ out: larger, sellers: 40, orders: ORDERS * 4, seed: 12 });
    await server.admin((conn) => conn.query('SET GLOBAL wait_timeout = 1'));
    try {
      const started = Date.now();
      const run = await runLoader(url, larger, { extraArgs: ['--stall-timeout', '1.5'] });
      expect(run.code, run.stderr).toBe(0);
      expect(Date.now() - started).toBeGreaterThan(2_000);
      const [[batch]] = await server.admin((conn) => conn.query<mysql.RowDataPacket[]>(`SELECT status FROM \`oi_loader_wait_timeout\`.etl_batch`));
      expect(batch?.status).toBe('succeeded');
    } finally {
      await server.admin((conn) => conn.query('SET GLOBAL wait_timeout = 28800'));
      await rm(larger, { recursive: true, force: true });
    }
  }, 120_000);

  it('the connection holding the batch lock killed mid-load: the load fails (its lock is gone), the rerun converges', async () => {
    const url = server.url('oi_loader_lock_lost');
    await migrateDatabase(url);
    let killing: Promise<unknown> | undefined;
    const run = await runLoader(url, folder, {
      // Pings every 100 ms: the load (under a second) sees the loss before it ends.
      extraArgs: ['--stall-timeout', '0.3'],
      onLine: (line) => {
        const batchId = /batch (\S+) started/.exec(line)?.[1];
        if (killing === undefined && batchId !== undefined) {
          killing = server.admin(async (conn) => {
            const [[holder]] = await conn.query<mysql.RowDataPacket[]>('SELECT IS_USED_LOCK(?) AS id', [`order-items-batch:${batchId}`]);
            await conn.query(`KILL ${Number(holder?.id)}`);
          });
        }
      },
    });
    await killing;
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toMatch(/^error: batch \S+ failed: the connection holding the batch's lock was lost/m);
    const rerun = await runLoader(url, folder);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(await fingerprint(url)).toEqual(referenceFingerprint);
  }, 120_000);

  it('paused mid-load (SIGSTOP: nothing answers, nothing closes): fails at the stall timeout, not never; the rerun converges', async () => {
    const url = server.url('oi_loader_paused');
    await migrateDatabase(url);
    let pausedAt: number | undefined;
    const run = await runLoader(url, folder, {
      extraArgs: ['--stall-timeout', '2'],
      onLine: (line) => {
        if (pausedAt === undefined && /olist_customers_dataset\.csv: read/.test(line)) {
          pausedAt = Date.now();
          server.pause();
        }
      },
    });
    const failedAfterMs = Date.now() - (pausedAt ?? Date.now());
    server.resume();
    expect(pausedAt, run.stderr).toBeDefined();
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toMatch(/^error: batch \S+ failed: the database stopped answering: no reply to a ping within 2 s$/m);
    // The 2 s timeout, a ping interval, and the pool's 5 s connect timeout to mark the batch failed.
    expect(failedAfterMs).toBeLessThan(15_000);

    const rerun = await runLoader(url, folder);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(await fingerprint(url)).toEqual(referenceFingerprint);
  }, 120_000);
});

describe('two batches loaded concurrently', () => {
  // Upserts only take a row forward to a newer batch, so an older batch whose chunks commit after
  // a newer batch's cannot overwrite them.
  it('equals loading them one after the other: the newer batch wins', async () => {
    // Batch B: the same keys as A with other prices and seller cities, ingested a day later.
    const newer = `${folder}-newer`;
    await mkdir(newer, { recursive: true });
    for (const name of Object.values(FILES)) await copyFile(path.join(folder, name), path.join(newer, name));
    const items = (await readFile(path.join(folder, FILES.items), 'utf8')).split('\n');
    const changed = items.map((line, i) => {
      if (i === 0 || line === '') return line;
      const fields = line.split(',');
      fields[5] = (Number(fields[5]) + 1).toFixed(2);
      return fields.join(',');
    });
    await writeFile(path.join(newer, FILES.items), changed.join('\n'));
    const sellers = (await readFile(path.join(folder, FILES.sellers), 'utf8')).split('\n');
    await writeFile(
      path.join(newer, FILES.sellers),
      sellers.map((line, i) => (i === 0 || line === '' ? line : line.replace(/,([a-z ]+),([A-Z]{2})$/, ',newer city,$2'))).join('\n'),
    );
    const older = { dir: folder, ingestedAt: '2024-01-01T00:00:00.000Z' };
    const newest = { dir: newer, ingestedAt: '2024-01-02T00:00:00.000Z' };
    try {
      const sequential = await createTestDatabase('loader_seq');
      const concurrent = await createTestDatabase('loader_conc');
      toDrop.push(sequential, concurrent);
      for (const batch of [older, newest]) {
        const run = await runLoader(sequential.url, batch.dir, { ingestedAt: batch.ingestedAt });
        expect(run.code, run.stderr).toBe(0);
      }
      // The newer batch starts first, so without ordering its rows would be overwritten.
      const first = runLoader(concurrent.url, newest.dir, { ingestedAt: newest.ingestedAt });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const second = runLoader(concurrent.url, older.dir, { ingestedAt: older.ingestedAt });
      const runs = await Promise.all([first, second]);
      for (const run of runs) expect(run.code, run.stderr).toBe(0);

      const expected = await fingerprint(sequential.url);
      expect(expected).not.toEqual(referenceFingerprint); // B really changed something
      expect(await fingerprint(concurrent.url)).toEqual(expected);
    } finally {
      await rm(newer, { recursive: true, force: true });
    }
  }, 120_000);
});
