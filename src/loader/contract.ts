// The data contract between the gold layer (Olist CSV layout) and the staging star schema: the
// six expected files, their exact headers, and one zod schema per file. A row that breaks a rule
// is quarantined with a readable reason; the rest of the batch loads.
import { z } from 'zod';
import { ORDER_STATUSES, type OrderStatus } from '../db/schema.js';

export const FILES = {
  translation: 'product_category_name_translation.csv',
  sellers: 'olist_sellers_dataset.csv',
  customers: 'olist_customers_dataset.csv',
  products: 'olist_products_dataset.csv',
  orders: 'olist_orders_dataset.csv',
  items: 'olist_order_items_dataset.csv',
} as const;
export type FileKind = keyof typeof FILES;

/** Load order: every file only refers to files loaded before it. */
export const LOAD_ORDER: readonly FileKind[] = ['translation', 'sellers', 'customers', 'products', 'orders', 'items'];

export const HEADERS = {
  translation: ['product_category_name', 'product_category_name_english'],
  sellers: ['seller_id', 'seller_zip_code_prefix', 'seller_city', 'seller_state'],
  customers: ['customer_id', 'customer_unique_id', 'customer_zip_code_prefix', 'customer_city', 'customer_state'],
  products: [
    'product_id',
    'product_category_name',
    // The source's spelling, kept: the header must match exactly.
    'product_name_lenght',
    'product_description_lenght',
    'product_photos_qty',
    'product_weight_g',
    'product_length_cm',
    'product_height_cm',
    'product_width_cm',
  ],
  orders: [
    'order_id',
    'customer_id',
    'order_status',
    'order_purchase_timestamp',
    'order_approved_at',
    'order_delivered_carrier_date',
    'order_delivered_customer_date',
    'order_estimated_delivery_date',
  ],
  items: [
    'order_id',
    'order_item_id',
    'product_id',
    'seller_id',
    'shipping_limit_date',
    'price',
    'freight_value',
  ],
} as const satisfies Record<FileKind, readonly string[]>;

// ---------------------------------------------------------------------------------------------
// Field rules

const HEX_ID = /^[0-9a-f]{32}$/;
// DECIMAL(12,2): at most 10 integer digits (leading zeros aside) and 2 decimals, no sign, no exponent.
const MONEY = /^0*\d{1,10}(\.\d{1,2})?$/;
const UNSIGNED_INT = /^\d{1,10}$/;

const SMALLINT_MAX = 65_535;
const INT_MAX = 4_294_967_295;

export const MESSAGES = {
  hexId: 'must be 32 lowercase hexadecimal characters',
  timestamp: 'must be a valid UTC timestamp YYYY-MM-DD HH:MM:SS',
  money: 'must be a non-negative decimal with at most 2 places',
  itemSeq: 'must be a positive integer (at most 65535)',
  status: `must be one of ${ORDER_STATUSES.join(', ')}`,
  state: 'must be 2 uppercase letters',
  zip: 'must be 1 to 10 digits',
  city: 'must be 1 to 128 characters',
  text: 'must hold a visible character and no control character',
  category: 'must be 1 to 100 characters',
  categoryEdgeSpace: 'must not start or end with a space',
  smallint: `must be empty or an integer from 0 to ${SMALLINT_MAX}`,
  int: `must be empty or an integer from 0 to ${INT_MAX}`,
} as const;

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return DAYS_IN_MONTH[month - 1] ?? 0;
}

/** True for 'YYYY-MM-DD HH:MM:SS' naming a real calendar date and time of day (years 1000-9999). */
export function isValidTimestamp(value: string): boolean {
  // Same rule as the TIMESTAMP pattern plus calendar checks, on char codes: this runs for three
  // to five fields of every order and item row.
  if (value.length !== 19) return false;
  for (let i = 0; i < 19; i += 1) {
    const c = value.charCodeAt(i);
    if (i === 4 || i === 7) {
      if (c !== 45 /* - */) return false;
    } else if (i === 10) {
      if (c !== 32 /* space */) return false;
    } else if (i === 13 || i === 16) {
      if (c !== 58 /* : */) return false;
    } else if (c < 48 || c > 57) {
      return false;
    }
  }
  const digits = (from: number, to: number): number => {
    let n = 0;
    for (let i = from; i < to; i += 1) n = n * 10 + (value.charCodeAt(i) - 48);
    return n;
  };
  const year = digits(0, 4);
  const month = digits(5, 7);
  const day = digits(8, 10);
  return (
    year >= 1000 &&
    month >= 1 &&
    month <= 12 &&
    day >= 1 &&
    day <= daysInMonth(year, month) &&
    digits(11, 13) <= 23 &&
    digits(14, 16) <= 59 &&
    digits(17, 19) <= 59
  );
}

const hexId = z.string().regex(HEX_ID, { error: MESSAGES.hexId });
const timestamp = z.string().refine(isValidTimestamp, { error: MESSAGES.timestamp });
const optionalTimestamp = z
  .string()
  .refine((v) => v === '' || isValidTimestamp(v), { error: `must be empty or a valid UTC timestamp YYYY-MM-DD HH:MM:SS` })
  .transform((v) => (v === '' ? null : v));
const money = z.string().regex(MONEY, { error: MESSAGES.money });
const itemSeq = z
  .string()
  // Leading zeros are the same number (as in money): '01' is item 1.
  .regex(/^0*[1-9]\d{0,4}$/, { error: MESSAGES.itemSeq })
  .transform(Number)
  .refine((n) => n <= SMALLINT_MAX, { error: MESSAGES.itemSeq });
const orderStatus = z.string().refine((v): v is OrderStatus => (ORDER_STATUSES as readonly string[]).includes(v), {
  error: MESSAGES.status,
});
const state = z.string().regex(/^[A-Z]{2}$/, { error: MESSAGES.state });
const zip = z.string().regex(/^\d{1,10}$/, { error: MESSAGES.zip });
// A blank name or one holding control characters (NUL, tab, line breaks, C1, the Unicode line and
// paragraph separators) is garbage, not a city.
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const VISIBLE_CHARACTER = /\S/;
const isReadableText = (v: string): boolean => VISIBLE_CHARACTER.test(v) && !CONTROL_CHARACTER.test(v);
const city = z
  .string()
  .min(1, { error: MESSAGES.city })
  .max(128, { error: MESSAGES.city })
  .refine(isReadableText, { error: MESSAGES.text });
// Category names are keys (the translation's, the API's filter and summary bucket), compared
// in binary collations that pad with spaces: 'toys' and 'toys ' would be one key to the database
// and two to everyone else. Edge spaces are refused rather than trimmed: the row is garbage.
const NO_EDGE_SPACE = /^(?!\s)[\s\S]*(?<!\s)$/;
const category = z
  .string()
  .min(1, { error: MESSAGES.category })
  .max(100, { error: MESSAGES.category })
  .regex(NO_EDGE_SPACE, { error: MESSAGES.categoryEdgeSpace })
  .refine(isReadableText, { error: MESSAGES.text });
const optionalCategory = z
  .string()
  .max(100, { error: 'must be at most 100 characters' })
  .regex(NO_EDGE_SPACE, { error: MESSAGES.categoryEdgeSpace })
  .refine((v) => v === '' || isReadableText(v), { error: MESSAGES.text })
  .transform((v) => (v === '' ? null : v));
const optionalUnsigned = (max: number, message: string) =>
  z
    .string()
    .refine((v) => v === '' || (UNSIGNED_INT.test(v) && Number(v) <= max), { error: message })
    .transform((v) => (v === '' ? null : Number(v)));
const optionalSmallint = optionalUnsigned(SMALLINT_MAX, MESSAGES.smallint);
const optionalInt = optionalUnsigned(INT_MAX, MESSAGES.int);

export const translationSchema = z
  .object({ product_category_name: category, product_category_name_english: category })
  .transform((r) => ({ categoryName: r.product_category_name, categoryNameEnglish: r.product_category_name_english }));

export const sellerSchema = z
  .object({ seller_id: hexId, seller_zip_code_prefix: zip, seller_city: city, seller_state: state })
  .transform((r) => ({
    sellerId: r.seller_id,
    zipCodePrefix: r.seller_zip_code_prefix,
    city: r.seller_city,
    state: r.seller_state,
  }));

export const customerSchema = z
  .object({
    customer_id: hexId,
    customer_unique_id: hexId,
    customer_zip_code_prefix: zip,
    customer_city: city,
    customer_state: state,
  })
  .transform((r) => ({
    customerId: r.customer_id,
    customerUniqueId: r.customer_unique_id,
    zipCodePrefix: r.customer_zip_code_prefix,
    city: r.customer_city,
    state: r.customer_state,
  }));

export const productSchema = z
  .object({
    product_id: hexId,
    product_category_name: optionalCategory,
    product_name_lenght: optionalSmallint,
    product_description_lenght: optionalInt,
    product_photos_qty: optionalSmallint,
    product_weight_g: optionalInt,
    product_length_cm: optionalSmallint,
    product_height_cm: optionalSmallint,
    product_width_cm: optionalSmallint,
  })
  .transform((r) => ({
    productId: r.product_id,
    categoryName: r.product_category_name,
    nameLength: r.product_name_lenght,
    descriptionLength: r.product_description_lenght,
    photosQty: r.product_photos_qty,
    weightG: r.product_weight_g,
    lengthCm: r.product_length_cm,
    heightCm: r.product_height_cm,
    widthCm: r.product_width_cm,
  }));

export const orderSchema = z
  .object({
    order_id: hexId,
    customer_id: hexId,
    order_status: orderStatus,
    order_purchase_timestamp: timestamp,
    order_approved_at: optionalTimestamp,
    order_delivered_carrier_date: optionalTimestamp,
    order_delivered_customer_date: optionalTimestamp,
    order_estimated_delivery_date: timestamp,
  })
  .transform((r) => ({
    orderId: r.order_id,
    customerId: r.customer_id,
    status: r.order_status as OrderStatus,
    purchasedAt: r.order_purchase_timestamp,
    approvedAt: r.order_approved_at,
    deliveredCarrierAt: r.order_delivered_carrier_date,
    deliveredCustomerAt: r.order_delivered_customer_date,
    estimatedDeliveryAt: r.order_estimated_delivery_date,
  }));

export const itemSchema = z
  .object({
    order_id: hexId,
    order_item_id: itemSeq,
    product_id: hexId,
    seller_id: hexId,
    shipping_limit_date: timestamp,
    price: money,
    freight_value: money,
  })
  .transform((r) => ({
    orderId: r.order_id,
    orderItemId: r.order_item_id,
    productId: r.product_id,
    sellerId: r.seller_id,
    shippingLimitAt: r.shipping_limit_date,
    price: r.price,
    freightValue: r.freight_value,
  }));

export const SCHEMAS = {
  translation: translationSchema,
  sellers: sellerSchema,
  customers: customerSchema,
  products: productSchema,
  orders: orderSchema,
  items: itemSchema,
} as const;

export type TranslationRow = z.output<typeof translationSchema>;
export type SellerRow = z.output<typeof sellerSchema>;
export type CustomerRow = z.output<typeof customerSchema>;
export type ProductRow = z.output<typeof productSchema>;
export type OrderRow = z.output<typeof orderSchema>;
export type ItemRow = z.output<typeof itemSchema>;

export interface RowsByKind {
  translation: TranslationRow;
  sellers: SellerRow;
  customers: CustomerRow;
  products: ProductRow;
  orders: OrderRow;
  items: ItemRow;
}

/** The key that identifies a row of each file (the target table's primary key). */
export const KEY_OF: { [K in FileKind]: (row: RowsByKind[K]) => string } = {
  translation: (r) => r.categoryName,
  sellers: (r) => r.sellerId,
  customers: (r) => r.customerId,
  products: (r) => r.productId,
  orders: (r) => r.orderId,
  items: (r) => `${r.orderId}:${r.orderItemId}`,
};

// ---------------------------------------------------------------------------------------------
// Fast path. The zod schemas above are the contract; running them on every row costs more than
// parsing the CSV. These hand-written checks accept exactly the rows the schemas accept and
// build the same output (test/loader/contract.test.ts compares both on generated inputs); a row
// they refuse goes through zod, which names the broken rules.

const ITEM_SEQ = /^0*[1-9]\d{0,4}$/;
const STATE = /^[A-Z]{2}$/;
const ZIP = /^\d{1,10}$/;
const STATUS_SET: ReadonlySet<string> = new Set(ORDER_STATUSES);

function isOptionalTimestamp(v: string): boolean {
  return v === '' || isValidTimestamp(v);
}
function optionalUnsignedValue(v: string, max: number): number | null | undefined {
  if (v === '') return null;
  if (!UNSIGNED_INT.test(v)) return undefined;
  const n = Number(v);
  return n <= max ? n : undefined;
}
/** The first `units` UTF-16 units of `text`, without a lone half of a surrogate pair at the cut. */
export function cutAt(text: string, units: number): string {
  const cut = text.slice(0, units);
  const last = cut.charCodeAt(cut.length - 1);
  return last >= 0xd800 && last <= 0xdbff ? cut.slice(0, -1) : cut;
}
/** At most `max` characters (code points, as zod and a utf8mb4 VARCHAR count them), readable. */
function isText(v: string, max: number): boolean {
  if (v.length < 1 || !isReadableText(v)) return false;
  // UTF-16 units are never fewer than code points: only a text over the limit in units is counted.
  return v.length <= max || codePointCount(v) <= max;
}
function codePointCount(v: string): number {
  let count = 0;
  for (const _ of v) count += 1;
  return count;
}
function isCategory(v: string): boolean {
  return isText(v, 100) && NO_EDGE_SPACE.test(v);
}

/** The row when every field passes, undefined otherwise (then zod explains why). */
export const FAST_VALIDATORS: { [K in FileKind]: (f: readonly string[]) => RowsByKind[K] | undefined } = {
  translation: ([name = '', english = '']) =>
    isCategory(name) && isCategory(english) ? { categoryName: name, categoryNameEnglish: english } : undefined,
  sellers: ([sellerId = '', zip = '', city = '', st = '']) =>
    HEX_ID.test(sellerId) && ZIP.test(zip) && isText(city, 128) && STATE.test(st)
      ? { sellerId, zipCodePrefix: zip, city, state: st }
      : undefined,
  customers: ([customerId = '', uniqueId = '', zip = '', city = '', st = '']) =>
    HEX_ID.test(customerId) && HEX_ID.test(uniqueId) && ZIP.test(zip) && isText(city, 128) && STATE.test(st)
      ? { customerId, customerUniqueId: uniqueId, zipCodePrefix: zip, city, state: st }
      : undefined,
  products: ([productId = '', cat = '', nameLen = '', descLen = '', photos = '', weight = '', len = '', height = '', width = '']) => {
    if (!HEX_ID.test(productId) || (cat !== '' && !isCategory(cat))) return undefined;
    const nameLength = optionalUnsignedValue(nameLen, SMALLINT_MAX);
    const descriptionLength = optionalUnsignedValue(descLen, INT_MAX);
    const photosQty = optionalUnsignedValue(photos, SMALLINT_MAX);
    const weightG = optionalUnsignedValue(weight, INT_MAX);
    const lengthCm = optionalUnsignedValue(len, SMALLINT_MAX);
    const heightCm = optionalUnsignedValue(height, SMALLINT_MAX);
    const widthCm = optionalUnsignedValue(width, SMALLINT_MAX);
    if (
      nameLength === undefined ||
      descriptionLength === undefined ||
      photosQty === undefined ||
      weightG === undefined ||
      lengthCm === undefined ||
      heightCm === undefined ||
      widthCm === undefined
    ) {
      return undefined;
    }
    return {
      productId,
      categoryName: cat === '' ? null : cat,
      nameLength,
      descriptionLength,
      photosQty,
      weightG,
      lengthCm,
      heightCm,
      widthCm,
    };
  },
  orders: ([orderId = '', customerId = '', status = '', purchased = '', approved = '', carrier = '', delivered = '', estimated = '']) =>
    HEX_ID.test(orderId) &&
    HEX_ID.test(customerId) &&
    STATUS_SET.has(status) &&
    isValidTimestamp(purchased) &&
    isOptionalTimestamp(approved) &&
    isOptionalTimestamp(carrier) &&
    isOptionalTimestamp(delivered) &&
    isValidTimestamp(estimated)
      ? {
          orderId,
          customerId,
          status: status as OrderStatus,
          purchasedAt: purchased,
          approvedAt: approved === '' ? null : approved,
          deliveredCarrierAt: carrier === '' ? null : carrier,
          deliveredCustomerAt: delivered === '' ? null : delivered,
          estimatedDeliveryAt: estimated,
        }
      : undefined,
  items: ([orderId = '', seq = '', productId = '', sellerId = '', shipping = '', price = '', freight = '']) => {
    if (
      !HEX_ID.test(orderId) ||
      !ITEM_SEQ.test(seq) ||
      !HEX_ID.test(productId) ||
      !HEX_ID.test(sellerId) ||
      !isValidTimestamp(shipping) ||
      !MONEY.test(price) ||
      !MONEY.test(freight)
    ) {
      return undefined;
    }
    const orderItemId = Number(seq);
    if (orderItemId > SMALLINT_MAX) return undefined;
    return { orderId, orderItemId, productId, sellerId, shippingLimitAt: shipping, price, freightValue: freight };
  },
};

export type Validation<T> = { ok: true; row: T } | { ok: false; reason: string };

const REASON_MAX = 1024;

function quote(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  return JSON.stringify(text.length > 80 ? `${cutAt(text, 80)}…` : text);
}

/**
 * Checks one parsed CSV record against the file's contract. Field count first (the parser
 * tolerates ragged rows so that they can be quarantined), then every field rule; the reason
 * lists every broken rule as `field: message (got "value")`.
 */
export function validateRecord<K extends FileKind>(kind: K, fields: readonly string[]): Validation<RowsByKind[K]> {
  if (fields.length === HEADERS[kind].length) {
    const row = (FAST_VALIDATORS[kind] as (f: readonly string[]) => RowsByKind[K] | undefined)(fields);
    if (row !== undefined) return { ok: true, row };
  }
  return validateWithZod(kind, fields);
}

/** The contract itself: the zod schema of the file (slow; names every broken rule). */
export function validateWithZod<K extends FileKind>(kind: K, fields: readonly string[]): Validation<RowsByKind[K]> {
  const header: readonly string[] = HEADERS[kind];
  if (fields.length !== header.length) {
    return { ok: false, reason: `wrong number of fields: expected ${header.length}, got ${fields.length}` };
  }
  const input: Record<string, string> = {};
  for (let i = 0; i < header.length; i += 1) {
    input[header[i] as string] = fields[i] as string;
  }
  const schema = SCHEMAS[kind] as unknown as z.ZodType<RowsByKind[K]>;
  const result = schema.safeParse(input);
  if (result.success) return { ok: true, row: result.data };
  const seen = new Set<string>();
  const parts: string[] = [];
  for (const issue of result.error.issues) {
    const field = String(issue.path[0] ?? '(row)');
    if (seen.has(field)) continue; // one reason per field is enough
    seen.add(field);
    parts.push(`${field}: ${issue.message} (got ${quote(input[field] ?? '')})`);
  }
  const reason = parts.join('; ');
  return { ok: false, reason: reason.length > REASON_MAX ? `${cutAt(reason, REASON_MAX - 1)}…` : reason };
}

/** Calendar attributes of a 'YYYY-MM-DD' day for dim_date (ISO weekday 1=Monday..7, ISO week; the server computes its year). */
export interface DateParts {
  dateKey: string;
  year: number;
  quarter: number;
  month: number;
  dayOfMonth: number;
  dayOfWeek: number;
  isoWeek: number;
  yearMonth: string;
}

export function dateParts(dateKey: string): DateParts {
  const year = Number(dateKey.slice(0, 4));
  const month = Number(dateKey.slice(5, 7));
  const day = Number(dateKey.slice(8, 10));
  const time = Date.UTC(year, month - 1, day);
  const dayOfWeek = ((new Date(time).getUTCDay() + 6) % 7) + 1;
  // ISO week: the week holding this week's Thursday.
  const thursday = new Date(time + (4 - dayOfWeek) * 86_400_000);
  const weekYearStart = Date.UTC(thursday.getUTCFullYear(), 0, 1);
  const isoWeek = Math.floor((thursday.getTime() - weekYearStart) / 86_400_000 / 7) + 1;
  return {
    dateKey,
    year,
    quarter: Math.floor((month - 1) / 3) + 1,
    month,
    dayOfMonth: day,
    dayOfWeek,
    isoWeek,
    yearMonth: dateKey.slice(0, 7),
  };
}
