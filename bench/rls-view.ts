// Measures the cost of a database-side tenant backstop: a definer view over fact_order_item
// filtered by a session tenant (`SET @tenant = ?` per request, read through a function because
// MySQL/MariaDB views cannot reference user variables), against the base-table list query the
// API runs today. Usage: npx tsx bench/rls-view.ts [rows=200000] [sellers=50] [seconds=8]
// Needs DATABASE_SERVER_URL (default mysql://root@127.0.0.1:3306); creates and drops its own DB.
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { createPool } from '../src/db/client.js';
import { migrateDatabase } from '../src/db/migrate.js';

const [rows = 200_000, sellers = 50, seconds = 8] = process.argv.slice(2).map(Number);
const SERVER = process.env.DATABASE_SERVER_URL ?? 'mysql://root@127.0.0.1:3306';
const CONCURRENCY = 8;
const name = `oi_bench_rls_${randomBytes(3).toString('hex')}`;
const url = `${SERVER}/${name}`;

const COLUMNS = `i.order_id, i.order_item_id, i.product_id, p.category_name_english AS category, i.seller_id, i.price,
  i.freight_value, i.shipping_limit_at, o.order_status, i.purchased_at, c.state AS customer_state, i.batch_id`;
const JOINS = `JOIN fact_order o ON o.order_id = i.order_id
  LEFT JOIN dim_product p ON p.product_id = i.product_id
  LEFT JOIN dim_customer c ON c.customer_id = o.customer_id`;
const ORDER = 'ORDER BY i.purchased_at DESC, i.order_id DESC, i.order_item_id DESC LIMIT 51';

type Variant = { label: string; run: (connection: mysql.PoolConnection, seller: string) => Promise<unknown> };
const variants: Variant[] = [
  {
    label: 'base table, WHERE i.seller_id = ? (today)',
    run: (c, seller) => c.execute(`SELECT ${COLUMNS} FROM fact_order_item i ${JOINS} WHERE i.seller_id = ? ${ORDER}`, [seller]),
  },
  {
    label: 'view WHERE seller_id = current_tenant(), SET @tenant per request',
    run: async (c, seller) => {
      await c.query('SET @tenant = ?', [seller]);
      return c.execute(`SELECT ${COLUMNS} FROM v_order_item_fn i ${JOINS} ${ORDER}`);
    },
  },
  {
    label: 'view WHERE seller_id = (SELECT current_tenant()), SET @tenant per request',
    run: async (c, seller) => {
      await c.query('SET @tenant = ?', [seller]);
      return c.execute(`SELECT ${COLUMNS} FROM v_order_item_sub i ${JOINS} ${ORDER}`);
    },
  },
  {
    label: 'base table, SET @tenant per request too (cost of the extra round trip alone)',
    run: async (c, seller) => {
      await c.query('SET @tenant = ?', [seller]);
      return c.execute(`SELECT ${COLUMNS} FROM fact_order_item i ${JOINS} WHERE i.seller_id = ? ${ORDER}`, [seller]);
    },
  },
];

async function seed(pool: mysql.Pool): Promise<string[]> {
  const sellerIds = Array.from({ length: sellers }, (_, n) => `MD5(CONCAT('seller-', ${n}))`);
  await pool.query(`INSERT INTO dim_product (product_id, category_name, category_name_english, batch_id)
    SELECT MD5(CONCAT('p', seq)), CONCAT('c', seq % 20), CONCAT('cat_', seq % 20), 'b' FROM seq_0_to_199`);
  await pool.query(`INSERT INTO dim_customer SELECT MD5(CONCAT('cu', seq)), MD5(CONCAT('u', seq)), '01000', 'x', 'SP', 'b', NOW(3) FROM seq_0_to_${rows - 1}`);
  await pool.query(`INSERT INTO fact_order (order_id, customer_id, order_status, purchased_at, purchase_date, batch_id)
    SELECT MD5(CONCAT('o', seq)), MD5(CONCAT('cu', seq)), 'delivered',
           '2017-01-01' + INTERVAL (seq * 37) % 63072000 SECOND, DATE('2017-01-01' + INTERVAL (seq * 37) % 63072000 SECOND), 'b'
      FROM seq_0_to_${rows - 1}`);
  await pool.query(`INSERT INTO fact_order_item (order_id, order_item_id, product_id, seller_id, shipping_limit_at, price, freight_value, purchased_at, batch_id)
    SELECT MD5(CONCAT('o', seq)), 1, MD5(CONCAT('p', seq % 200)), MD5(CONCAT('seller-', seq % ${sellers})),
           '2017-01-05', 10 + seq % 100, 5, '2017-01-01' + INTERVAL (seq * 37) % 63072000 SECOND, 'b'
      FROM seq_0_to_${rows - 1}`);
  await pool.query('ANALYZE TABLE fact_order_item, fact_order, dim_product, dim_customer');
  const [found] = await pool.query<mysql.RowDataPacket[]>(`SELECT ${sellerIds.join(', ')}`);
  return Object.values(found[0] as Record<string, string>);
}

async function measure(pool: mysql.Pool, variant: Variant, sellerIds: string[], ms: number): Promise<{ rps: number; p50: number; p99: number }> {
  const latencies: number[] = [];
  const until = performance.now() + ms;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, worker) => {
      const connection = await pool.getConnection();
      try {
        let n = worker;
        while (performance.now() < until) {
          const started = performance.now();
          await variant.run(connection, sellerIds[n % sellerIds.length] as string);
          latencies.push(performance.now() - started);
          n += CONCURRENCY;
        }
      } finally {
        connection.release();
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return { rps: latencies.length / (ms / 1000), p50: at(0.5), p99: at(0.99) };
}

await migrateDatabase(url);
const pool = createPool(url, { connectionLimit: CONCURRENCY });
try {
  const started = performance.now();
  const sellerIds = await seed(pool);
  console.log(`seeded ${rows} items for ${sellers} sellers in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  await pool.query(`CREATE FUNCTION current_tenant() RETURNS CHAR(32) CHARACTER SET ascii DETERMINISTIC NO SQL RETURN @tenant`);
  await pool.query(`CREATE SQL SECURITY DEFINER VIEW v_order_item_fn AS SELECT * FROM fact_order_item WHERE seller_id = current_tenant()`);
  await pool.query(`CREATE SQL SECURITY DEFINER VIEW v_order_item_sub AS SELECT * FROM fact_order_item WHERE seller_id = (SELECT current_tenant())`);
  const connection = await pool.getConnection();
  await connection.query('SET @tenant = ?', [sellerIds[0]]);
  for (const view of ['v_order_item_fn', 'v_order_item_sub']) {
    const [plan] = await connection.query<mysql.RowDataPacket[]>(`EXPLAIN SELECT ${COLUMNS} FROM ${view} i ${JOINS} ${ORDER}`);
    const first: Record<string, unknown> = plan[0] ?? {};
    console.log(`EXPLAIN ${view}: table=${first.table} type=${first.type} key=${first.key} rows=${first.rows}`);
  }
  connection.release();
  // Interleaved rounds, median per variant: the order of runs (buffer pool warming, other load
  // on the machine) must not favour one variant.
  const ROUNDS = 3;
  const samples = new Map<string, { rps: number; p50: number; p99: number }[]>();
  for (const variant of variants) await measure(pool, variant, sellerIds, 1000); // warm-up
  for (let round = 0; round < ROUNDS; round += 1) {
    for (const variant of round % 2 === 0 ? variants : [...variants].reverse()) {
      const list = samples.get(variant.label) ?? [];
      list.push(await measure(pool, variant, sellerIds, ((seconds ?? 8) * 1000) / ROUNDS));
      samples.set(variant.label, list);
    }
  }
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
  const results = variants.map((variant) => {
    const list = samples.get(variant.label) ?? [];
    return { label: variant.label, rps: median(list.map((s) => s.rps)), p50: median(list.map((s) => s.p50)), p99: median(list.map((s) => s.p99)) };
  });
  const baseline = results[0]?.rps ?? 1;
  console.log(`\n${CONCURRENCY} connections, ${seconds} s per variant, list query (51 rows) of a random seller of ${sellers}`);
  for (const r of results) {
    console.log(`${r.label.padEnd(80)} ${r.rps.toFixed(0).padStart(6)} q/s  p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  ${(((r.rps - baseline) / baseline) * 100).toFixed(1)}%`);
  }
} finally {
  await pool.end();
  const admin = await mysql.createConnection({ uri: SERVER });
  await admin.query(`DROP DATABASE IF EXISTS \`${name}\``);
  await admin.end();
}
