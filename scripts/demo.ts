// One command from a fresh checkout to a running API with data: migrate, generate and load a
// demo batch (or a folder you name), start the server, print tokens and curl examples.
//   npm run demo                      generated marketplace (20 sellers, 5,000 orders)
//   npm run demo -- --dir <olist dir> a real Olist folder instead
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createSigner } from 'fast-jwt';
import type { RowDataPacket } from 'mysql2/promise';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createPool } from '../src/db/client.js';
import { migrateDatabase } from '../src/db/migrate.js';
import { generateDataset } from '../src/generate/generate.js';
import { toSqlTimestamp } from '../src/http/timestamps.js';
import { loadBatch } from '../src/loader/load-batch.js';
import { parseCommandLine } from '../src/cli/args.js';

const { values } = parseCommandLine('npm run demo --', { options: { dir: { type: 'string' }, sellers: { type: 'string', default: '20' }, orders: { type: 'string', default: '5000' } } }, 'migrate, load demo data (generated, or --dir), serve, print tokens and curl examples');

// A demo needs a signing key; a real deployment sets JWT_SECRET (or a public key / JWKS) itself.
const env = { ...process.env };
env.JWT_SECRET ??= randomBytes(32).toString('hex');
env.CURSOR_SECRET ??= env.JWT_SECRET;
const config = loadConfig(env);
if (config.jwt.key.kind !== 'secret') throw new Error('npm run demo mints its own tokens: set JWT_SECRET (or nothing), not a public key');
const secret = config.jwt.key.secret;

console.error(`migrating ${config.databaseUrl.replace(/:[^:@/]*@/, ':***@')} ...`);
await migrateDatabase(config.databaseUrl);

// npm runs scripts from the package root: a relative --dir means the caller's folder, as for load --dir.
let dir = values.dir === undefined ? undefined : resolve(process.env.INIT_CWD ?? process.cwd(), values.dir);
if (dir === undefined) {
  dir = await mkdtemp(join(tmpdir(), 'order-items-demo-'));
  // The generated data is the demo's own: removed however the demo ends.
  const generatedDir = dir;
  process.once('exit', () => rmSync(generatedDir, { recursive: true, force: true }));
  const generated = await generateDataset({ out: dir, sellers: Number(values.sellers), orders: Number(values.orders), seed: 42 });
  console.error(`generated ${generated.items} items of ${generated.sellers} sellers in ${dir}`);
}

// The batch is stamped as ingested a few minutes ago, with a simulated upstream `source` stage,
// so that the timeline and the freshness figures have something to show.
const ingestedAt = Date.now() - 4 * 60_000;
const summary = await loadBatch({ databaseUrl: config.databaseUrl, dir, source: 'demo', ingestedAt: new Date(ingestedAt) });
console.error(`loaded batch ${summary.batchId}: ${JSON.stringify(summary.files)}`);
const pool = createPool(config.databaseUrl, { connectionLimit: 1 });
let sellers: RowDataPacket[];
let sampleOrder: RowDataPacket[];
try {
  const upstream: [string, number, number][] = [['source', 5, 35]];
  for (const [stage, start, end] of upstream) {
    await pool.query(
      // As docs/monitoring.md tells an upstream stage to write it (never INSERT IGNORE).
      `INSERT INTO etl_batch_stage (batch_id, stage, started_at, finished_at, status) VALUES (?, ?, ?, ?, 'succeeded')
         ON DUPLICATE KEY UPDATE batch_id = batch_id`,
      [summary.batchId, stage, toSqlTimestamp(ingestedAt + start * 1000), toSqlTimestamp(ingestedAt + end * 1000)],
    );
  }
  [sellers] = await pool.query<RowDataPacket[]>(
    'SELECT seller_id, COUNT(*) AS items FROM fact_order_item GROUP BY seller_id ORDER BY items DESC, seller_id LIMIT 2',
  );
  // An order of seller A (several items if any) in which seller B sold nothing, for the examples.
  [sampleOrder] = await pool.query<RowDataPacket[]>(
    `SELECT order_id, order_item_id FROM fact_order_item
      WHERE seller_id = ? AND order_id NOT IN (SELECT order_id FROM fact_order_item WHERE seller_id = ?)
      ORDER BY order_item_id DESC, order_id LIMIT 1`,
    [sellers[0]?.seller_id ?? '', sellers[1]?.seller_id ?? ''],
  );
} finally {
  await pool.end();
}

const sign = createSigner({ key: secret, algorithm: 'HS256', expiresIn: 12 * 3600 * 1000 });
const tokenFor = (claims: Record<string, unknown>): string =>
  sign({ ...claims, ...(config.jwt.issuer ? { iss: config.jwt.issuer } : {}), ...(config.jwt.audience ? { aud: config.jwt.audience } : {}) });
const [first, second] = sellers.map((row) => String(row.seller_id));
const orderId = String(sampleOrder[0]?.order_id ?? '');
const orderItemId = Number(sampleOrder[0]?.order_item_id ?? 1);
if (first === undefined || second === undefined) throw new Error('the demo data has fewer than two sellers');
const tokenA = tokenFor({ sub: `seller:${first}`, [config.jwt.tenantClaim]: first, scope: 'order-items:read' });
const tokenB = tokenFor({ sub: `seller:${second}`, [config.jwt.tenantClaim]: second, scope: 'order-items:read' });
const tokenOps = tokenFor({ sub: 'demo-operator', scope: 'pipeline:read pipeline:write' });

const app = await buildApp(config);
await app.listen({ host: config.host, port: config.port });
const metricsPort = await app.listenMetrics(config.metricsHost, config.metricsPort);
const base = `http://${config.host}:${config.port}`;
process.stdout.write(`
order-items-api demo is running at ${base} (metrics: http://${config.metricsHost}:${metricsPort}/metrics)

Seller A (${first}):
  export TOKEN_A='${tokenA}'
Seller B (${second}):
  export TOKEN_B='${tokenB}'
Pipeline operator (pipeline:read pipeline:write):
  export TOKEN_OPS='${tokenOps}'

Try:
  curl -s -H "Authorization: Bearer $TOKEN_A" '${base}/v1/order-items?limit=3'
  curl -s -H "Authorization: Bearer $TOKEN_B" '${base}/v1/order-items/summary?groupBy=month'
  curl -s -H "Authorization: Bearer $TOKEN_A" '${base}/v1/orders/${orderId}'
  curl -s -H "Authorization: Bearer $TOKEN_A" '${base}/v1/order-items/${orderId}/${orderItemId}'
  curl -s -i -H "Authorization: Bearer $TOKEN_B" '${base}/v1/orders/${orderId}'   # seller B: 404, as for an order that does not exist
  curl -s -H "Authorization: Bearer $TOKEN_OPS" '${base}/v1/pipeline/batches/${summary.batchId}'
  curl -s '${base}/openapi.json'
  curl -s 'http://${config.metricsHost}:${metricsPort}/metrics' | grep order_items_

Ctrl-C stops the server.
`);
const stop = async (): Promise<void> => {
  await app.close();
  process.exit(0);
};
process.once('SIGINT', () => void stop());
process.once('SIGTERM', () => void stop());
