// A tiny hand-written folder in the Olist layout, for integration tests that need exact rows.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { Pool, RowDataPacket } from 'mysql2/promise';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FILES, HEADERS, type FileKind } from '../../src/loader/contract.js';

export const ID = {
  seller1: 'a'.repeat(32),
  seller2: 'b'.repeat(32),
  customer1: 'c'.repeat(31) + '1',
  customer2: 'c'.repeat(31) + '2',
  unique: 'd'.repeat(32),
  product1: 'e'.repeat(31) + '1',
  product2: 'e'.repeat(31) + '2',
  order1: '0'.repeat(31) + '1',
  order2: '0'.repeat(31) + '2',
  unknownOrder: 'f'.repeat(32),
} as const;

export function baseRows(): Record<FileKind, string[]> {
  return {
    translation: ['perfumaria,perfumery', 'artes,art'],
    sellers: [`${ID.seller1},"13023",campinas,SP`, `${ID.seller2},"01001",sao paulo,SP`],
    customers: [
      `${ID.customer1},${ID.unique},"14409",franca,SP`,
      `${ID.customer2},${ID.unique},"09790",sao bernardo do campo,SP`,
    ],
    products: [`${ID.product1},perfumaria,40,287,1,225,16,10,14`, `${ID.product2},,,,,650,17,14,12`],
    orders: [
      `"${ID.order1}",${ID.customer1},delivered,"2017-09-13 04:08:35","2017-09-13 11:05:35","2017-09-14 11:05:35","2017-09-26 01:54:28","2017-10-03 00:00:00"`,
      `"${ID.order2}",${ID.customer2},shipped,"2018-01-01 10:00:00","2018-01-01 12:00:00","2018-01-02 12:00:00",,"2018-01-25 00:00:00"`,
    ],
    items: [
      `"${ID.order1}",1,${ID.product1},${ID.seller1},2017-09-19 09:45:35,58.90,13.29`,
      `"${ID.order1}",2,${ID.product2},${ID.seller2},2017-09-19 09:45:35,10.00,0.00`,
      `"${ID.order2}",1,${ID.product1},${ID.seller1},2018-01-05 10:00:00,100.50,20.00`,
    ],
  };
}

export interface Folder {
  dir: string;
  cleanup(): Promise<void>;
}

/** Writes the six files (rows as given, header as expected unless overridden). */
export async function writeFolder(
  rows: Record<FileKind, string[]>,
  options: { headers?: Partial<Record<FileKind, string>>; omit?: FileKind[] } = {},
): Promise<Folder> {
  const dir = await mkdtemp(path.join(tmpdir(), 'oi-loader-'));
  for (const kind of Object.keys(FILES) as FileKind[]) {
    if (options.omit?.includes(kind)) continue;
    const header = options.headers?.[kind] ?? HEADERS[kind].map((h) => `"${h}"`).join(',');
    await writeFile(path.join(dir, FILES[kind]), `${[header, ...rows[kind]].join('\n')}\n`);
  }
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export const ALL_TABLES = [
  'dim_category_translation',
  'dim_seller',
  'dim_customer',
  'dim_product',
  'dim_date',
  'fact_order',
  'fact_order_item',
  'order_item_wide',
  'etl_batch',
  'etl_batch_stage',
  'etl_rejected_row',
] as const;

/** Reading and clearing a test database's tables. */
export function tables(pool: Pool): {
  rows<T = RowDataPacket>(sql: string, params?: unknown[]): Promise<T[]>;
  countAll(): Promise<Record<string, number>>;
  emptyAll(): Promise<void>;
} {
  const rows = async <T = RowDataPacket>(sql: string, params: unknown[] = []): Promise<T[]> => {
    const [result] = await pool.query<RowDataPacket[]>(sql, params);
    return result as T[];
  };
  return {
    rows,
    async countAll() {
      const counts: Record<string, number> = {};
      for (const table of ALL_TABLES) {
        const [row] = await rows<{ n: number }>(`SELECT COUNT(*) AS n FROM \`${table}\``);
        counts[table] = Number(row?.n);
      }
      return counts;
    },
    async emptyAll() {
      for (const table of ALL_TABLES) await pool.query(`DELETE FROM \`${table}\``);
    },
  };
}
