// Builds the read-benchmark datasets, idempotently.
//   npx tsx bench/datasets.ts --dataset 5m [--server private|shared]   oi_bench_5m, set-based SQL
//   npx tsx bench/datasets.ts --dataset olist                          oi_bench_olist, the loader
//   npx tsx bench/datasets.ts --stop-private [--remove-data]
//
// 5m: 5,000,000 items in 3,125,000 orders (1-3 items each, mean 1.6) across 3,000 sellers with a
// Zipf(0.9) skew (largest ≈ 390k items, the next ≈ 210k, 145k, 110k; smallest ≈ 290), 1,000,000
// customers in 27 states (SP-heavy), 100,000 products in 24 categories, purchases spread over two
// years, one succeeded batch (etl_batch + staging stage) so freshness exists, and order_item_wide
// filled with the backfill statement of drizzle/0002. Built with MariaDB's Sequence engine
// (seq_1_to_N) in a few INSERT ... SELECT statements instead of CSVs through the loader.
// Idempotent: a complete dataset (marker batch + row counts) is left alone; anything else is
// dropped and rebuilt. Timings go to stderr and to the last line (JSON) on stdout.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import { migrateDatabase } from '../src/db/migrate.js';
import { ensurePrivateServer, stopPrivateServer } from './private-server.js';
import { parseCommandLine } from '../src/cli/args.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SHARED_SERVER_URL = process.env.BENCH_DATABASE_SERVER_URL ?? 'mysql://root@127.0.0.1:3306';
export const DATASET_DB = { olist: 'oi_bench_olist', '5m': 'oi_bench_5m' } as const;
export type DatasetName = keyof typeof DATASET_DB;

const ITEMS = 5_000_000;
const ORDERS = (ITEMS / 8) * 5; // blocks of 8 items = 5 orders of 1,1,2,1,3 items
const SELLERS = 3_000;
const CUSTOMERS = 1_000_000;
const PRODUCTS = 100_000;
const ZIPF_S = 0.9;
const BATCH_ID = 'bench-5m-v1';
const OLIST_DIR = process.env.BENCH_OLIST_DIR ?? path.resolve(repoRoot, '../shared/data/olist');

const CATEGORIES = [
  'bed_bath_table', 'health_beauty', 'sports_leisure', 'furniture_decor', 'computers_accessories', 'housewares',
  'watches_gifts', 'telephony', 'garden_tools', 'auto', 'toys', 'cool_stuff', 'perfumery', 'baby', 'electronics',
  'stationery', 'fashion_bags_accessories', 'pet_shop', 'office_furniture', 'consoles_games', 'luggage_accessories',
  'construction_tools_construction', 'home_appliances', 'musical_instruments',
];
// 27 states; SP repeated so that about a quarter of customers are in SP (Olist: about 40%).
const STATES = ['SP', 'SP', 'SP', 'SP', 'SP', 'SP', 'SP', 'SP', 'SP', 'SP', 'SP', 'RJ', 'RJ', 'RJ', 'MG', 'MG', 'MG', 'RS', 'PR', 'SC',
  'BA', 'DF', 'ES', 'GO', 'PE', 'CE', 'PA', 'MT', 'MA', 'MS', 'PB', 'PI', 'RN', 'AL', 'SE', 'TO', 'RO', 'AM', 'AC', 'AP', 'RR'];
const sqlList = (values: readonly string[]): string => values.map((v) => `'${v}'`).join(',');

function log(message: string): void {
  console.error(`[datasets] ${message}`);
}

async function timed(connection: Connection, label: string, sql: string): Promise<number> {
  const started = performance.now();
  await connection.query(sql);
  const seconds = (performance.now() - started) / 1000;
  log(`${label}: ${seconds.toFixed(1)} s`);
  return seconds;
}

async function count(connection: Connection, sql: string): Promise<number> {
  const [rows] = await connection.query<RowDataPacket[]>(sql);
  return Number(rows[0]?.n ?? 0);
}

/** A custom backfill migration's statement, without its comments. */
async function backfillSql(file: string): Promise<string> {
  const text = await readFile(path.join(repoRoot, 'drizzle', file), 'utf8');
  return text
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('--'))
    .join('\n')
    .trim()
    .replace(/;$/, '');
}

async function complete5m(serverUrl: string): Promise<boolean> {
  const connection = await mysql.createConnection({ uri: serverUrl });
  try {
    const [dbs] = await connection.query<RowDataPacket[]>('SHOW DATABASES LIKE ?', [DATASET_DB['5m']]);
    if (dbs.length === 0) return false;
    await connection.query(`USE \`${DATASET_DB['5m']}\``);
    const marker = await count(connection, `SELECT COUNT(*) AS n FROM etl_batch_stage WHERE batch_id = '${BATCH_ID}' AND stage = 'staging' AND status = 'succeeded'`).catch(() => 0);
    if (marker !== 1) return false;
    const wide = await count(connection, 'SELECT COUNT(*) AS n FROM order_item_wide');
    const items = await count(connection, 'SELECT COUNT(*) AS n FROM fact_order_item');
    return wide === ITEMS && items === ITEMS;
  } finally {
    await connection.end();
  }
}

export async function build5m(serverUrl: string): Promise<Record<string, number | string>> {
  if (await complete5m(serverUrl)) {
    // Migrations added since the build (their backfills included) still apply.
    await migrateDatabase(`${serverUrl}/${DATASET_DB['5m']}`);
    log(`${DATASET_DB['5m']} on ${serverUrl} is complete; migrated, nothing else to do`);
    return { status: 'present' };
  }
  const started = performance.now();
  const admin = await mysql.createConnection({ uri: serverUrl });
  await admin.query(`DROP DATABASE IF EXISTS \`${DATASET_DB['5m']}\``);
  await admin.end();
  const url = `${serverUrl}/${DATASET_DB['5m']}`;
  await migrateDatabase(url);
  const c = await mysql.createConnection({ uri: url, multipleStatements: true });
  const t: Record<string, number | string> = {};
  try {
    await c.query("SET SESSION time_zone = '+00:00', unique_checks = 0, foreign_key_checks = 0, max_statement_time = 0");
    // Seller allocation: seller k (1..3000) gets a contiguous range of order numbers proportional
    // to k^-s. Order numbers are then mapped to random-looking ids (MD5), so the physical order of
    // the star tables' primary keys is unrelated to the seller, as with real ids.
    await c.query(`CREATE TABLE bench_seller_alloc (k INT PRIMARY KEY, seller_id CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      first_order INT NOT NULL, last_order INT NOT NULL, KEY (first_order)) ENGINE=InnoDB`);
    t.sellerAlloc = await timed(c, 'seller allocation', `INSERT INTO bench_seller_alloc
      SELECT k, MD5(CONCAT('seller-', k)),
             ROUND((cum - w) / total * ${ORDERS}) + 1, ROUND(cum / total * ${ORDERS})
        FROM (SELECT seq AS k, POW(seq, -${ZIPF_S}) AS w,
                     SUM(POW(seq, -${ZIPF_S})) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) AS cum,
                     SUM(POW(seq, -${ZIPF_S})) OVER () AS total
                FROM seq_1_to_${SELLERS}) z`);
    t.dimSeller = await timed(c, 'dim_seller', `INSERT INTO dim_seller (seller_id, zip_code_prefix, city, state, batch_id)
      SELECT seller_id, LPAD(k * 37 % 99999, 5, '0'), CONCAT('city-', k % 500), ELT(1 + k % ${STATES.length}, ${sqlList(STATES)}), '${BATCH_ID}'
        FROM bench_seller_alloc`);
    t.dimCustomer = await timed(c, 'dim_customer', `INSERT INTO dim_customer (customer_id, customer_unique_id, zip_code_prefix, city, state, batch_id)
      SELECT MD5(CONCAT('customer-', seq)), MD5(CONCAT('unique-', seq DIV 2)), LPAD(seq * 7 % 99999, 5, '0'), CONCAT('city-', seq % 4000),
             ELT(1 + (seq * 2654435761) % ${STATES.length}, ${sqlList(STATES)}), '${BATCH_ID}'
        FROM seq_1_to_${CUSTOMERS}`);
    t.dimProduct = await timed(c, 'dim_product', `INSERT INTO dim_product (product_id, category_name, category_name_english, name_length, description_length,
        photos_qty, weight_g, length_cm, height_cm, width_cm, batch_id)
      SELECT MD5(CONCAT('product-', seq)), cat, cat, 20 + seq % 50, 100 + seq % 3000, 1 + seq % 6, 100 + seq % 20000, 10 + seq % 80, 2 + seq % 60, 8 + seq % 70, '${BATCH_ID}'
        FROM (SELECT seq, IF(seq % 50 = 0, NULL, ELT(1 + FLOOR(POW((seq * 40503 % 1000) / 1000, 1.6) * ${CATEGORIES.length}), ${sqlList(CATEGORIES)})) AS cat
                FROM seq_1_to_${PRODUCTS}) p`);
    t.dimDate = await timed(c, 'dim_date', `INSERT INTO dim_date (date_key, year, quarter, month, day_of_month, day_of_week, iso_week, iso_year, \`year_month\`, batch_id)
      SELECT d, YEAR(d), QUARTER(d), MONTH(d), DAYOFMONTH(d), WEEKDAY(d) + 1, WEEK(d, 3), YEARWEEK(d, 3) DIV 100, DATE_FORMAT(d, '%Y-%m'), '${BATCH_ID}'
        FROM (SELECT DATE '2016-01-01' + INTERVAL (seq - 1) DAY AS d FROM seq_1_to_1096) days`);
    // Orders: seller from the allocation (range join driven by the 3,000 sellers), purchase time
    // uniform over two years (2016-09-01 .. 2018-08-31), status mostly delivered.
    await c.query(`CREATE TABLE bench_order_map (n INT PRIMARY KEY, order_id CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      seller_id CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, purchased_at DATETIME NOT NULL) ENGINE=InnoDB`);
    t.orderMap = await timed(c, 'order map', `INSERT INTO bench_order_map
      SELECT s.seq, MD5(CONCAT('order-', s.seq)), a.seller_id,
             TIMESTAMP '2016-09-01 00:00:00' + INTERVAL ((s.seq * 2654435761 + 12345) % 63072000) SECOND
        FROM bench_seller_alloc a JOIN seq_1_to_${ORDERS} s ON s.seq BETWEEN a.first_order AND a.last_order`);
    t.factOrder = await timed(c, 'fact_order', `INSERT INTO fact_order (order_id, customer_id, order_status, purchased_at, purchase_date, approved_at,
        delivered_carrier_at, delivered_customer_at, estimated_delivery_at, batch_id)
      SELECT order_id, MD5(CONCAT('customer-', 1 + (n * 48271) % ${CUSTOMERS})), st, purchased_at, DATE(purchased_at),
             IF(st IN ('created'), NULL, purchased_at + INTERVAL 1 HOUR),
             IF(st IN ('delivered', 'shipped'), purchased_at + INTERVAL 2 DAY, NULL),
             IF(st = 'delivered', purchased_at + INTERVAL (3 + n % 20) DAY, NULL),
             purchased_at + INTERVAL 24 DAY, '${BATCH_ID}'
        FROM (SELECT n, order_id, purchased_at,
                     ELT(1 + n % 40, 'delivered','delivered','delivered','delivered','delivered','delivered','delivered','delivered','delivered','delivered',
                                     'delivered','delivered','delivered','delivered','delivered','delivered','delivered','delivered','delivered','delivered',
                                     'delivered','delivered','delivered','delivered','delivered','delivered','delivered','delivered','delivered','delivered',
                                     'delivered','delivered','delivered','delivered','delivered','shipped','canceled','unavailable','invoiced','processing') AS st
                FROM bench_order_map) m`);
    // Items: item s belongs to order (s-1) DIV 8 * 5 + [0,1,2,2,3,4,4,4][(s-1) % 8] + 1, item
    // number [1,1,1,2,1,1,2,3][(s-1) % 8]. Inserted in five slices so progress is visible.
    let itemsSeconds = 0;
    for (let slice = 0; slice < 5; slice += 1) {
      const lo = slice * (ITEMS / 5) + 1;
      const hi = (slice + 1) * (ITEMS / 5);
      itemsSeconds += await timed(c, `fact_order_item ${lo}..${hi}`, `INSERT INTO fact_order_item (order_id, order_item_id, product_id, seller_id,
          shipping_limit_at, price, freight_value, purchased_at, batch_id)
        SELECT m.order_id, ELT(1 + (s.seq - 1) % 8, 1, 1, 1, 2, 1, 1, 2, 3),
               MD5(CONCAT('product-', 1 + (s.seq * 69621) % ${PRODUCTS})), m.seller_id,
               m.purchased_at + INTERVAL 6 DAY,
               ROUND(5 + POW(((s.seq * 16807) % 10007) / 10007, 3) * 1500, 2),
               ROUND(4 + ((s.seq * 48271) % 4001) / 100, 2),
               m.purchased_at, '${BATCH_ID}'
          FROM seq_${lo}_to_${hi} s
          JOIN bench_order_map m ON m.n = (s.seq - 1) DIV 8 * 5 + ELT(1 + (s.seq - 1) % 8, 0, 1, 2, 2, 3, 4, 4, 4) + 1`);
    }
    t.factOrderItem = itemsSeconds;
    t.wideBackfill = await timed(c, 'order_item_wide (drizzle/0002 backfill)', await backfillSql('0002_backfill_order_item_wide.sql'));
    t.summaryBackfill = await timed(
      c,
      'order_item_daily_summary (drizzle/0004 backfill)',
      await backfillSql('0004_backfill_order_item_daily_summary.sql'),
    );
    await c.query(`INSERT INTO etl_batch (batch_id, source, created_at, status) VALUES ('${BATCH_ID}', 'bench/datasets.ts 5m', NOW(3) - INTERVAL 5 MINUTE, 'succeeded')`);
    await c.query(`INSERT INTO etl_batch_stage (batch_id, stage, started_at, finished_at, rows_in, rows_out, rows_rejected, status)
      VALUES ('${BATCH_ID}', 'staging', NOW(3) - INTERVAL 4 MINUTE, NOW(3), ${ITEMS}, ${ITEMS}, 0, 'succeeded')`);
    await c.query('DROP TABLE bench_order_map, bench_seller_alloc');
    t.analyze = await timed(c, 'ANALYZE', 'ANALYZE TABLE fact_order_item, fact_order, dim_product, dim_customer, order_item_wide');
    t.totalSeconds = Number(((performance.now() - started) / 1000).toFixed(1));
    log(`built ${DATASET_DB['5m']} in ${t.totalSeconds} s`);
    return t;
  } finally {
    await c.end();
  }
}

export async function buildOlist(serverUrl: string): Promise<Record<string, number | string>> {
  const url = `${serverUrl}/${DATASET_DB.olist}`;
  await migrateDatabase(url);
  const c = await mysql.createConnection({ uri: url });
  try {
    const items = await count(c, 'SELECT COUNT(*) AS n FROM fact_order_item');
    const staged = await count(c, "SELECT COUNT(*) AS n FROM etl_batch_stage WHERE stage = 'staging' AND status = 'succeeded'");
    const t: Record<string, number | string> = {};
    if (items !== 112_650 || staged === 0) {
      const started = performance.now();
      const { loadBatch } = await import('../src/loader/load-batch.js');
      await loadBatch({ databaseUrl: url, dir: OLIST_DIR, source: 'olist' });
      t.loadSeconds = Number(((performance.now() - started) / 1000).toFixed(1));
      log(`loaded Olist in ${t.loadSeconds} s`);
    }
    if ((await count(c, 'SELECT COUNT(*) AS n FROM order_item_wide')) !== 112_650) {
      await c.query('DELETE FROM order_item_wide');
      t.wideBackfill = await timed(c, 'order_item_wide (drizzle/0002 backfill)', await backfillSql('0002_backfill_order_item_wide.sql'));
      await c.query('DELETE FROM order_item_daily_summary');
      t.summaryBackfill = await timed(
        c,
        'order_item_daily_summary (drizzle/0004 backfill)',
        await backfillSql('0004_backfill_order_item_daily_summary.sql'),
      );
    }
    return { status: Object.keys(t).length === 0 ? 'present' : 'built', ...t };
  } finally {
    await c.end();
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const { values } = parseCommandLine('npx tsx bench/datasets.ts', {
    options: {
      dataset: { type: 'string', default: '5m' },
      server: { type: 'string' },
      'stop-private': { type: 'boolean', default: false },
      'remove-data': { type: 'boolean', default: false },
    },
  });
  if (values['stop-private']) {
    await stopPrivateServer(values['remove-data']);
  } else if (values.dataset === '5m') {
    const server = values.server ?? 'private';
    const serverUrl = server === 'private' ? await ensurePrivateServer() : SHARED_SERVER_URL;
    console.log(JSON.stringify({ dataset: '5m', server, ...(await build5m(serverUrl)) }));
  } else if (values.dataset === 'olist') {
    const serverUrl = values.server === 'private' ? await ensurePrivateServer() : SHARED_SERVER_URL;
    console.log(JSON.stringify({ dataset: 'olist', server: values.server ?? 'shared', ...(await buildOlist(serverUrl)) }));
  } else {
    throw new Error('--dataset must be olist or 5m');
  }
}
