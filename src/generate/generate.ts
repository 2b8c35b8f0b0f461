// Deterministic synthetic data in the Olist CSV layout (same six files, headers and quoting
// style). Same options → byte-identical files. Output is streamed: ids are derived from
// (seed, kind, index) by hashing, so nothing but the seller weights is kept in memory.
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FILES, HEADERS } from '../loader/contract.js';

export interface GenerateOptions {
  out: string;
  sellers: number;
  orders: number;
  seed: number;
}

export interface GenerateResult {
  dir: string;
  sellers: number;
  customers: number;
  products: number;
  orders: number;
  items: number;
  categories: number;
}

// ---------------------------------------------------------------------------------------------
// Randomness: a seeded PRNG for the sequence, a hash for ids.

/** sfc32: small, fast, good enough for test data; seeded through splitmix32. */
export function createRandom(seed: number): () => number {
  let s = seed >>> 0;
  const next32 = (): number => {
    s = (s + 0x9e3779b9) | 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = next32();
  let b = next32();
  let c = next32();
  let d = next32();
  return () => {
    a |= 0;
    b |= 0;
    c |= 0;
    d |= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
}

function mix32(x: number): number {
  let z = x | 0;
  z = Math.imul(z ^ (z >>> 16), 0x7feb352d);
  z = Math.imul(z ^ (z >>> 15), 0x846ca68b);
  return (z ^ (z >>> 16)) >>> 0;
}

/** 32 lowercase hex characters derived from (seed, kind, index): stable, practically unique. */
function hexId(seed: number, kind: number, index: number): string {
  let out = '';
  let h = mix32(seed ^ Math.imul(kind + 1, 0x9e3779b9));
  const lo = index >>> 0;
  const hi = Math.floor(index / 4294967296);
  for (let part = 0; part < 4; part += 1) {
    h = mix32(h ^ lo ^ Math.imul(part + 1, 0x632be5ab));
    h = mix32(h + hi + part);
    out += h.toString(16).padStart(8, '0');
  }
  return out;
}

const KIND = { seller: 1, customer: 2, customerUnique: 3, product: 4, order: 5 } as const;

// ---------------------------------------------------------------------------------------------
// Reference data

/** Portuguese category → English (null: no translation, as some Olist categories). */
const CATEGORIES: ReadonlyArray<readonly [string, string | null]> = [
  ['cama_mesa_banho', 'bed_bath_table'],
  ['beleza_saude', 'health_beauty'],
  ['esporte_lazer', 'sports_leisure'],
  ['moveis_decoracao', 'furniture_decor'],
  ['informatica_acessorios', 'computers_accessories'],
  ['utilidades_domesticas', 'housewares'],
  ['relogios_presentes', 'watches_gifts'],
  ['telefonia', 'telephony'],
  ['ferramentas_jardim', 'garden_tools'],
  ['automotivo', 'auto'],
  ['brinquedos', 'toys'],
  ['cool_stuff', 'cool_stuff'],
  ['perfumaria', 'perfumery'],
  ['bebes', 'baby'],
  ['eletronicos', 'electronics'],
  ['papelaria', 'stationery'],
  ['fashion_bolsas_e_acessorios', 'fashion_bags_accessories'],
  ['pet_shop', 'pet_shop'],
  ['moveis_escritorio', 'office_furniture'],
  ['consoles_games', 'consoles_games'],
  ['malas_acessorios', 'luggage_accessories'],
  ['construcao_ferramentas_construcao', 'construction_tools_construction'],
  ['eletrodomesticos', 'home_appliances'],
  ['instrumentos_musicais', 'musical_instruments'],
  ['livros_interesse_geral', 'books_general_interest'],
  ['alimentos', 'food'],
  ['pc_gamer', null],
  ['portateis_cozinha_e_preparadores_de_alimentos', null],
];

const PLACES: ReadonlyArray<readonly [string, string, number]> = [
  ['sao paulo', 'SP', 1000],
  ['campinas', 'SP', 13000],
  ['sao bernardo do campo', 'SP', 9700],
  ['rio de janeiro', 'RJ', 20000],
  ['niteroi', 'RJ', 24000],
  ['belo horizonte', 'MG', 30000],
  ['curitiba', 'PR', 80000],
  ['porto alegre', 'RS', 90000],
  ['salvador', 'BA', 40000],
  ['brasilia', 'DF', 70000],
  ['goiania', 'GO', 74000],
  ['recife', 'PE', 50000],
  ['fortaleza', 'CE', 60000],
  ['florianopolis', 'SC', 88000],
  ['vitoria', 'ES', 29000],
  ['manaus', 'AM', 69000],
];

const STATUSES: ReadonlyArray<readonly [string, number]> = [
  ['delivered', 0.97],
  ['shipped', 0.011],
  ['canceled', 0.006],
  ['unavailable', 0.006],
  ['invoiced', 0.003],
  ['processing', 0.003],
  ['created', 0.0005],
  ['approved', 0.0005],
];

const START = Date.UTC(2016, 8, 1); // 2016-09-01
const SPAN_MS = 2 * 365 * 86_400_000;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

// ---------------------------------------------------------------------------------------------
// Formatting in the Olist style: headers quoted, fields starting with a digit quoted.

function q(value: string): string {
  const c = value.charCodeAt(0);
  return c >= 48 && c <= 57 ? `"${value}"` : value;
}

function timestamp(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}

function money(cents: number): string {
  return `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`;
}

class Output {
  private buffer: string[] = [];
  private size = 0;
  private constructor(private readonly stream: WriteStream) {}

  static open(file: string, header: string): Output {
    const out = new Output(createWriteStream(file));
    out.buffer.push(header);
    return out;
  }

  async line(text: string): Promise<void> {
    this.buffer.push(text);
    this.size += text.length;
    if (this.size > 256 * 1024) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.buffer.length === 0) return;
    const text = this.buffer.join('\n') + '\n';
    this.buffer = [];
    this.size = 0;
    if (!this.stream.write(text)) await once(this.stream, 'drain');
  }

  /** Writes what is left; `finalNewline: false` reproduces a file without a final line break. */
  async close(finalNewline = true): Promise<void> {
    const text = this.buffer.join('\n') + (finalNewline && this.buffer.length > 0 ? '\n' : '');
    this.buffer = [];
    this.stream.end(text);
    await once(this.stream, 'finish');
  }
}

function quotedHeader(fields: readonly string[]): string {
  return fields.map((f) => `"${f}"`).join(',');
}

// ---------------------------------------------------------------------------------------------

/** Seeds are 32-bit: each one gives its own data. */
export const MAX_SEED = 0xffff_ffff;

/** Writes the six files into `out` (created if missing). */
export async function generateDataset(options: GenerateOptions): Promise<GenerateResult> {
  const { out, seed } = options;
  for (const [name, value] of [
    ['sellers', options.sellers],
    ['orders', options.orders],
  ] as const) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer (got ${value})`);
  }
  if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) throw new Error(`seed must be an integer from 0 to ${MAX_SEED} (got ${seed})`);
  await mkdir(out, { recursive: true });
  const random = createRandom(seed);
  const int = (min: number, max: number): number => min + Math.floor(random() * (max - min + 1));
  const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)] as T;

  // Translation: a BOM, an unquoted header and no final newline, like the Olist file.
  const translation = Output.open(path.join(out, FILES.translation), `\ufeff${HEADERS.translation.join(',')}`);
  let translated = 0;
  for (const [pt, en] of CATEGORIES) {
    if (en === null) continue;
    await translation.line(`${pt},${en}`);
    translated += 1;
  }
  await translation.close(false);

  // Sellers, with Zipf-like weights (s = 1.1): a few sellers hold most of the items.
  const sellerCount = options.sellers;
  const sellerFile = Output.open(path.join(out, FILES.sellers), quotedHeader(HEADERS.sellers));
  const cumulative = new Float64Array(sellerCount);
  let total = 0;
  for (let i = 0; i < sellerCount; i += 1) {
    total += 1 / Math.pow(i + 1, 1.1);
    cumulative[i] = total;
    const [city, state, zipBase] = pick(PLACES);
    const zip = String(zipBase + int(0, 999)).padStart(5, '0');
    await sellerFile.line(`${q(hexId(seed, KIND.seller, i))},${q(zip)},${city},${state}`);
  }
  await sellerFile.close();
  const pickSeller = (): number => {
    const target = random() * total;
    let lo = 0;
    let hi = sellerCount - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((cumulative[mid] ?? 0) < target) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };

  // Products: about one per three orders; ~2% without category (and without name/description/photos).
  const productCount = Math.max(20, Math.ceil(options.orders / 3));
  const productFile = Output.open(path.join(out, FILES.products), quotedHeader(HEADERS.products));
  for (let i = 0; i < productCount; i += 1) {
    const id = q(hexId(seed, KIND.product, i));
    const dims = `${int(50, 30000)},${int(10, 100)},${int(2, 100)},${int(6, 100)}`;
    if (random() < 0.02) {
      await productFile.line(`${id},,,,,${dims}`);
    } else {
      const [category] = pick(CATEGORIES);
      await productFile.line(`${id},${category},${int(5, 76)},${int(4, 3992)},${int(1, 20)},${dims}`);
    }
  }
  await productFile.close();
  // Mild product skew: popular products sell more.
  const pickProduct = (): number => Math.floor(productCount * random() * random());

  // Orders, their customer (one per order, as in Olist) and their items, in one pass.
  const orderFile = Output.open(path.join(out, FILES.orders), quotedHeader(HEADERS.orders));
  const customerFile = Output.open(path.join(out, FILES.customers), quotedHeader(HEADERS.customers));
  const itemFile = Output.open(path.join(out, FILES.items), quotedHeader(HEADERS.items));
  let items = 0;
  for (let o = 0; o < options.orders; o += 1) {
    const orderId = hexId(seed, KIND.order, o);
    const customerId = hexId(seed, KIND.customer, o);
    // About 3% of customers come back: their unique id is shared with an earlier order.
    const uniqueIndex = random() < 0.03 && o > 0 ? int(0, o - 1) : o;
    const [city, state, zipBase] = pick(PLACES);
    const zip = String(zipBase + int(0, 999)).padStart(5, '0');
    await customerFile.line(
      `${q(customerId)},${q(hexId(seed, KIND.customerUnique, uniqueIndex))},${q(zip)},${city},${state}`,
    );

    let roll = random();
    let status = 'delivered';
    for (const [name, share] of STATUSES) {
      if (roll < share) {
        status = name;
        break;
      }
      roll -= share;
    }
    const purchased = START + Math.floor(random() * (SPAN_MS / 1000)) * 1000;
    const approved = status === 'created' ? null : purchased + int(10, 2 * 24 * 60) * MINUTE + int(0, 59) * 1000;
    const shipped = status === 'shipped' || status === 'delivered';
    const carrier = shipped && approved !== null ? approved + int(1, 5) * DAY + int(0, 23) * HOUR : null;
    const delivered = status === 'delivered' && carrier !== null ? carrier + int(1, 20) * DAY + int(0, 86_399) * 1000 : null;
    const estimatedDay = Math.floor(purchased / DAY) * DAY + int(20, 35) * DAY;
    const ts = (ms: number | null): string => (ms === null ? '' : q(timestamp(ms)));
    await orderFile.line(
      `${q(orderId)},${q(customerId)},${status},${ts(purchased)},${ts(approved)},${ts(carrier)},${ts(delivered)},${ts(estimatedDay)}`,
    );

    // Items per order: mostly one, sometimes a few, rarely many (up to 21 as in Olist).
    const r = random();
    const count = r < 0.88 ? 1 : r < 0.96 ? 2 : r < 0.995 ? int(3, 6) : int(7, 21);
    let seller = pickSeller();
    const shippingLimit = timestamp(purchased + int(3, 7) * DAY + int(0, 86_399) * 1000);
    for (let seq = 1; seq <= count; seq += 1) {
      if (seq > 1 && random() < 0.1) seller = pickSeller(); // some orders span several sellers
      const price = Math.round(Math.exp(2.3 + random() * 4.3) * 100); // ~10 to ~735 BRL, log-uniform (Olist: 0.85 to 6,735)
      const freight = int(0, 9000);
      items += 1;
      await itemFile.line(
        `${q(orderId)},${seq},${q(hexId(seed, KIND.product, pickProduct()))},${q(hexId(seed, KIND.seller, seller))},${shippingLimit},${money(price)},${money(freight)}`,
      );
    }
  }
  await Promise.all([orderFile.close(), customerFile.close(), itemFile.close()]);

  return {
    dir: out,
    sellers: sellerCount,
    customers: options.orders,
    products: productCount,
    orders: options.orders,
    items,
    categories: translated,
  };
}

/** For tests: a small dataset in a fresh temporary folder, removed by cleanup(). */
export async function generateToTempDir(
  options: Partial<Omit<GenerateOptions, 'out'>> = {},
): Promise<GenerateResult & { cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'oi-generated-'));
  const cleanup = (): Promise<void> => rm(dir, { recursive: true, force: true });
  try {
    const result = await generateDataset({ out: dir, sellers: 20, orders: 300, seed: 42, ...options });
    return { ...result, cleanup };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
