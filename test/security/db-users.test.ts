// Least privilege in the database: scripts/create-db-users.ts creates the API and loader
// accounts; the API account can serve and record its stage, and cannot change facts or schema.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDbUsers, LOADER_TABLES, SERVING_TABLES } from '../../scripts/create-db-users.js';
import { generateDataset } from '../../src/generate/generate.js';
import { loadBatch } from '../../src/loader/load-batch.js';
import { buildTestApp } from '../helpers/app.js';
import { SERVER_URL, createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { FIXTURE_BATCH, SELLERS, seedMarketplace } from '../helpers/fixtures.js';
import { mintToken } from '../helpers/tokens.js';
import { auth, http, listen } from './support.js';

let db: TestDatabase;
const suffix = randomBytes(3).toString('hex');
// Random names so parallel runs on one server never share (or reset) an account.
const apiUser = `oi_api_${suffix}`;
const loaderUser = `oi_loader_${suffix}`;
const apiPassword = randomBytes(18).toString('base64url');
const loaderPassword = randomBytes(18).toString('base64url');
let api: mysql.Connection;
let loader: mysql.Connection;

const urlFor = (user: string, password: string): string => {
  const server = new URL(SERVER_URL);
  return `mysql://${user}:${encodeURIComponent(password)}@${server.host}/${db.name}`;
};
const connect = (user: string, password: string): Promise<mysql.Connection> => mysql.createConnection({ uri: urlFor(user, password) });

async function denied(connection: mysql.Connection, sql: string): Promise<string> {
  try {
    await connection.query(sql);
  } catch (error) {
    return String((error as { code?: string }).code);
  }
  throw new Error(`expected "${sql}" to be denied`);
}
const DENIED = /^ER_(TABLEACCESS_DENIED_ERROR|DBACCESS_DENIED_ERROR|SPECIFIC_ACCESS_DENIED_ERROR|COLUMNACCESS_DENIED_ERROR|ACCESS_DENIED_ERROR)$/;

beforeAll(async () => {
  db = await createTestDatabase('sec_db_users');
  await seedMarketplace(db.pool, 6);
  // Twice: the script is idempotent.
  for (let n = 0; n < 2; n += 1) {
    await createDbUsers({ adminUrl: db.url, apiPassword, loaderPassword, apiUser, loaderUser });
  }
  api = await connect(apiUser, apiPassword);
  loader = await connect(loaderUser, loaderPassword);
});

afterAll(async () => {
  await api?.end();
  await loader?.end();
  const admin = await mysql.createConnection({ uri: SERVER_URL });
  try {
    for (const user of [apiUser, loaderUser]) await admin.query('DROP USER IF EXISTS ?@?', [user, '%']);
  } finally {
    await admin.end();
  }
  await db?.drop();
});

describe('the API account', () => {
  it('reads every serving table', async () => {
    for (const table of SERVING_TABLES) await api.query(`SELECT COUNT(*) FROM \`${table}\``);
  });

  it('writes the api stage and pipeline reports (INSERT/UPDATE on etl_batch, etl_batch_stage)', async () => {
    await api.execute(
      `INSERT INTO etl_batch_stage (batch_id, stage, started_at, finished_at, status) VALUES (?, 'api', NOW(3), NOW(3), 'succeeded')
       ON DUPLICATE KEY UPDATE finished_at = VALUES(finished_at)`,
      [FIXTURE_BATCH],
    );
    await api.execute(`UPDATE etl_batch_stage SET updated_at = NOW(3) WHERE batch_id = ? AND stage = 'api'`, [FIXTURE_BATCH]);
    await api.execute(`INSERT INTO etl_batch (batch_id, source, created_at, status) VALUES ('priv-test', 'x', NOW(3), 'running')`);
  });

  it('cannot update, delete or insert facts and dimensions, nor delete monitoring rows', async () => {
    expect(await denied(api, `UPDATE fact_order_item SET price = 0`)).toMatch(DENIED);
    expect(await denied(api, `DELETE FROM fact_order_item`)).toMatch(DENIED);
    expect(await denied(api, `INSERT INTO fact_order_item SELECT * FROM fact_order_item LIMIT 0`)).toMatch(DENIED);
    expect(await denied(api, `UPDATE fact_order SET order_status = 'canceled'`)).toMatch(DENIED);
    expect(await denied(api, `DELETE FROM dim_seller`)).toMatch(DENIED);
    expect(await denied(api, `DELETE FROM etl_batch_stage`)).toMatch(DENIED);
    expect(await denied(api, `DELETE FROM etl_batch`)).toMatch(DENIED);
    expect(await denied(api, `SELECT * FROM etl_rejected_row`)).toMatch(DENIED);
  });

  it('cannot drop, alter, create or truncate anything, nor read other schemas', async () => {
    expect(await denied(api, `DROP TABLE fact_order_item`)).toMatch(DENIED);
    expect(await denied(api, `DROP TABLE etl_batch_stage`)).toMatch(DENIED);
    expect(await denied(api, `TRUNCATE TABLE etl_batch_stage`)).toMatch(DENIED);
    expect(await denied(api, `ALTER TABLE fact_order_item ADD COLUMN x INT`)).toMatch(DENIED);
    expect(await denied(api, `CREATE TABLE t (id INT)`)).toMatch(DENIED);
    expect(await denied(api, `CREATE VIEW v AS SELECT 1`)).toMatch(DENIED);
    expect(await denied(api, `DROP DATABASE \`${db.name}\``)).toMatch(DENIED);
    expect(await denied(api, `SELECT * FROM mysql.user`)).toMatch(DENIED);
    expect(await denied(api, `GRANT SELECT ON \`${db.name}\`.* TO '${loaderUser}'@'%'`)).toMatch(/DENIED|ER_/);
  });

  it('is enough to run the app: data routes and the pipeline PUT work as this account', async () => {
    const app = await buildTestApp(urlFor(apiUser, apiPassword));
    try {
      const base = await listen(app);
      const list = await http(`${base}/v1/order-items?limit=2`, { headers: auth(mintToken({ sellerId: SELLERS.alpha })) });
      expect(list.status, list.text).toBe(200);
      const put = await http(`${base}/v1/pipeline/batches/least-priv/stages/landing`, {
        method: 'PUT',
        headers: { ...auth(mintToken({ scope: 'pipeline:write' })), 'content-type': 'application/json' },
        body: JSON.stringify({ startedAt: '2024-01-01T00:00:00Z', finishedAt: '2024-01-01T00:01:00Z', status: 'failed' }),
      });
      expect(put.status, put.text).toBe(201);
      const batches = await http(`${base}/v1/pipeline/batches`, { headers: auth(mintToken({ scope: 'pipeline:read' })) });
      expect(batches.status).toBe(200);
      expect((await http(`${base}/readyz`)).status).toBe(200);
    } finally {
      await app.close();
    }
  });
});

describe('the API account, granted by an earlier version of the script (no SELECT on __drizzle_migrations)', () => {
  it('stays ready: readiness then checks only that the database answers', async () => {
    await db.pool.query(`REVOKE SELECT ON \`${db.name}\`.\`__drizzle_migrations\` FROM ?@?`, [apiUser, '%']);
    const app = await buildTestApp(urlFor(apiUser, apiPassword));
    try {
      const base = await listen(app);
      expect((await http(`${base}/readyz`)).status).toBe(200);
      expect((await http(`${base}/readyz`)).status).toBe(200);
      const list = await http(`${base}/v1/order-items?limit=2`, { headers: auth(mintToken({ sellerId: SELLERS.alpha })) });
      expect(list.status).toBe(200);
    } finally {
      await app.close();
      await createDbUsers({ adminUrl: db.url, apiPassword, loaderPassword, apiUser, loaderUser });
    }
  });
});

describe('the loader account', () => {
  it('reads, inserts, updates and deletes its tables', async () => {
    for (const table of LOADER_TABLES) await loader.query(`SELECT COUNT(*) FROM \`${table}\``);
    await loader.execute(`INSERT INTO etl_rejected_row (batch_id, file, line, reason, raw_content) VALUES ('b', 'f', 1, 'r', 'x')`);
    await loader.execute(`UPDATE fact_order_item SET batch_id = batch_id`);
    await loader.execute(`DELETE FROM etl_rejected_row WHERE batch_id = 'b'`);
  });
  it('cannot change the schema', async () => {
    expect(await denied(loader, `DROP TABLE fact_order_item`)).toMatch(DENIED);
    expect(await denied(loader, `ALTER TABLE fact_order_item ADD COLUMN x INT`)).toMatch(DENIED);
    expect(await denied(loader, `CREATE TABLE t (id INT)`)).toMatch(DENIED);
    // It reads which migrations ran (a load refuses an unmigrated database) but cannot record one.
    expect(await denied(loader, `DELETE FROM __drizzle_migrations`)).toMatch(DENIED);
    expect(await denied(loader, `INSERT INTO __drizzle_migrations (hash, created_at) VALUES ('x', 1)`)).toMatch(DENIED);
  });
  it('is enough to run a whole load as this account', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'oi-loader-user-'));
    const url = new URL(db.url);
    url.username = loaderUser;
    url.password = loaderPassword;
    let summary: Awaited<ReturnType<typeof loadBatch>>;
    try {
      await generateDataset({ out: dir, sellers: 3, orders: 40, seed: 11 });
      summary = await loadBatch({ databaseUrl: url.toString(), dir });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(summary.status).toBe('succeeded');
    expect(summary.files['olist_order_items_dataset.csv'].rejected).toBe(0);
    const [rows] = await loader.query(`SELECT COUNT(*) AS n FROM order_item_wide WHERE batch_id = ?`, [summary.batchId]);
    expect((rows as { n: number }[])[0]?.n).toBe(summary.files['olist_order_items_dataset.csv'].loaded);
  });
});

describe('an account is one deployment\'s (audit: a rerun for another database revoked this one\'s grants)', () => {
  it('the script refuses an account that has privileges on another database, and changes nothing', async () => {
    const other = await createTestDatabase('sec_db_users_other');
    try {
      await expect(createDbUsers({ adminUrl: other.url, apiPassword: `${apiPassword}-other`, loaderPassword, apiUser, loaderUser })).rejects.toThrow(
        new RegExp(`account ${apiUser}@% also has privileges on \`${db.name}\`.*no existing account was changed`),
      );
      // This deployment's account still logs in with its password and reads its tables.
      const still = await connect(apiUser, apiPassword);
      try {
        const [rows] = await still.query('SELECT COUNT(*) AS n FROM fact_order_item');
        expect(Number((rows as { n: number }[])[0]?.n)).toBeGreaterThan(0);
      } finally {
        await still.end();
      }
      // An account with server-wide privileges is not a least-privilege one to take over either.
      const globalUser = `oi_glob_${suffix}`;
      const admin = await mysql.createConnection({ uri: SERVER_URL });
      try {
        await admin.query('CREATE USER ?@? IDENTIFIED BY ?', [globalUser, '%', apiPassword]);
        await admin.query('GRANT SELECT ON *.* TO ?@?', [globalUser, '%']);
        await expect(createDbUsers({ adminUrl: other.url, apiPassword, loaderPassword, apiUser: globalUser, loaderUser: `oi_gl_${suffix}` })).rejects.toThrow(
          /holds server-wide privileges \(SELECT ON \*\.\*\)/,
        );
      } finally {
        await admin.query('DROP USER IF EXISTS ?@?', [globalUser, '%']);
        await admin.end();
      }
      // A role (as a PROXY grant: any line it does not parse): privileges this script would revoke,
      // or leave, without knowing whom they serve.
      const roleUser = `oi_role_${suffix}`;
      const role = `oi_r_${suffix}`;
      const root = await mysql.createConnection({ uri: SERVER_URL });
      try {
        await root.query(`CREATE ROLE ${role}`);
        await root.query('CREATE USER ?@? IDENTIFIED BY ?', [roleUser, '%', apiPassword]);
        await root.query(`GRANT ${role} TO ?@?`, [roleUser, '%']);
        await expect(createDbUsers({ adminUrl: other.url, apiPassword, loaderPassword, apiUser: roleUser, loaderUser: `oi_rl_${suffix}` })).rejects.toThrow(
          /holds a grant this script does not manage \(GRANT `oi_r_/,
        );
      } finally {
        await root.query('DROP USER IF EXISTS ?@?', [roleUser, '%']);
        await root.query(`DROP ROLE IF EXISTS ${role}`);
        await root.end();
      }
      // Accounts of its own are fine there (control).
      const ownApi = `oi_api2_${suffix}`;
      const ownLoader = `oi_loader2_${suffix}`;
      try {
        await createDbUsers({ adminUrl: other.url, apiPassword, loaderPassword, apiUser: ownApi, loaderUser: ownLoader });
      } finally {
        const admin = await mysql.createConnection({ uri: SERVER_URL });
        try {
          for (const user of [ownApi, ownLoader]) await admin.query('DROP USER IF EXISTS ?@?', [user, '%']);
        } finally {
          await admin.end();
        }
      }
    } finally {
      await other.drop();
    }
  });
});

describe('a grant on this database written as an escaped pattern', () => {
  it('counts as this database (\\_ is a literal underscore), not another one', async () => {
    const escapedUser = `oi_esc_${suffix}`;
    const root = await mysql.createConnection({ uri: SERVER_URL });
    try {
      await root.query('CREATE USER ?@? IDENTIFIED BY ?', [escapedUser, '%', loaderPassword]);
      await root.query(`GRANT CREATE TEMPORARY TABLES ON \`${db.name.replaceAll('_', '\\_')}\`.* TO ?@?`, [escapedUser, '%']);
      await createDbUsers({ adminUrl: db.url, apiPassword, loaderPassword, apiUser: `oi_esa_${suffix}`, loaderUser: escapedUser });
    } finally {
      for (const user of [escapedUser, `oi_esa_${suffix}`]) await root.query('DROP USER IF EXISTS ?@?', [user, '%']);
      await root.end();
    }
  });
});

describe('an admin that cannot read other accounts\' grants (audit: the check then saw nothing and went ahead)', () => {
  it('refuses an existing account it cannot check, and still creates new ones', async () => {
    const other = await createTestDatabase('sec_db_users_admin');
    const adminUser = `oi_adm_${suffix}`;
    const adminPassword = randomBytes(18).toString('base64url');
    const root = await mysql.createConnection({ uri: SERVER_URL });
    const fresh = [`oi_api3_${suffix}`, `oi_loader3_${suffix}`] as const;
    try {
      await root.query('CREATE USER ?@? IDENTIFIED BY ?', [adminUser, '%', adminPassword]);
      await root.query('GRANT CREATE USER ON *.* TO ?@?', [adminUser, '%']);
      await root.query(`GRANT ALL PRIVILEGES ON \`${other.name}\`.* TO ?@? WITH GRANT OPTION`, [adminUser, '%']);
      const adminUrl = `mysql://${adminUser}:${encodeURIComponent(adminPassword)}@${new URL(SERVER_URL).host}/${other.name}`;
      await expect(createDbUsers({ adminUrl, apiPassword: `${apiPassword}-x`, loaderPassword, apiUser, loaderUser })).rejects.toThrow(/cannot read its grants/);
      // The other deployment's account is untouched: its password still works.
      const still = await connect(apiUser, apiPassword);
      await still.end();
      // One new account and one existing it cannot read: refused, and the new one is not left behind.
      const preexisting = `oi_pre_${suffix}`;
      await root.query('CREATE USER ?@? IDENTIFIED BY ?', [preexisting, '%', loaderPassword]);
      await expect(createDbUsers({ adminUrl, apiPassword, loaderPassword, apiUser: fresh[0], loaderUser: preexisting })).rejects.toThrow(/cannot read its grants/);
      await expect(root.query('SHOW GRANTS FOR ?@?', [fresh[0], '%'])).rejects.toMatchObject({ errno: 1141 });
      await root.query('DROP USER ?@?', [preexisting, '%']);
      // New accounts: nothing to protect, created and granted (control).
      await createDbUsers({ adminUrl, apiPassword, loaderPassword, apiUser: fresh[0], loaderUser: fresh[1] });
      const [grants] = await root.query('SHOW GRANTS FOR ?@?', [fresh[0], '%']);
      expect(JSON.stringify(grants)).toContain(`\`${other.name}\`.\`fact_order_item\``);
    } finally {
      for (const user of [adminUser, ...fresh]) await root.query('DROP USER IF EXISTS ?@?', [user, '%']);
      await root.end();
      await other.drop();
    }
  });
});
