import { describe, expect, it } from 'vitest';
import { UUID_V7_PATTERN, uuidv7 } from '../../src/loader/batch-id.js';
import { cutAt, dateParts, HEADERS, isValidTimestamp, validateRecord } from '../../src/loader/contract.js';

const ID_HEX = 'a'.repeat(32);

const ORDER = '00010242fe8c5a6d1ba2dd792cb16214';
const SELLER = '48436dade18ac8b2bce089ec2a041202';
const PRODUCT = '4244733e06e7ecb4970a6e2683c13e61';
const item = (over: Partial<Record<(typeof HEADERS.items)[number], string>> = {}): string[] => {
  const row = {
    order_id: ORDER,
    order_item_id: '1',
    product_id: PRODUCT,
    seller_id: SELLER,
    shipping_limit_date: '2017-09-19 09:45:35',
    price: '58.90',
    freight_value: '13.29',
    ...over,
  };
  return HEADERS.items.map((h) => row[h]);
};
const order = (over: Partial<Record<(typeof HEADERS.orders)[number], string>> = {}): string[] => {
  const row = {
    order_id: ORDER,
    customer_id: SELLER,
    order_status: 'delivered',
    order_purchase_timestamp: '2017-09-13 04:08:35',
    order_approved_at: '',
    order_delivered_carrier_date: '',
    order_delivered_customer_date: '',
    order_estimated_delivery_date: '2017-10-03 00:00:00',
    ...over,
  };
  return HEADERS.orders.map((h) => row[h]);
};

function reasonOf(result: ReturnType<typeof validateRecord>): string {
  if (result.ok) throw new Error('expected a reject');
  return result.reason;
}

describe('data contract', () => {
  it('accepts a valid item and keeps money as strings', () => {
    const result = validateRecord('items', item());
    expect(result).toEqual({
      ok: true,
      row: {
        orderId: ORDER,
        orderItemId: 1,
        productId: PRODUCT,
        sellerId: SELLER,
        shippingLimitAt: '2017-09-19 09:45:35',
        price: '58.90',
        freightValue: '13.29',
      },
    });
  });

  it.each([
    ['order_id', { order_id: ORDER.toUpperCase() }, 'order_id: must be 32 lowercase hexadecimal characters'],
    ['seller_id', { seller_id: SELLER.slice(1) }, 'seller_id: must be 32 lowercase hexadecimal characters'],
    ['order_item_id 0', { order_item_id: '0' }, 'order_item_id: must be a positive integer (at most 65535) (got "0")'],
    ['order_item_id 1.5', { order_item_id: '1.5' }, 'order_item_id: must be a positive integer'],
    ['order_item_id too big', { order_item_id: '70000' }, 'order_item_id: must be a positive integer'],
    ['negative price', { price: '-3.5' }, 'price: must be a non-negative decimal with at most 2 places (got "-3.5")'],
    ['3 decimals', { price: '1.999' }, 'price: must be a non-negative decimal with at most 2 places (got "1.999")'],
    ['float notation', { freight_value: '1e3' }, 'freight_value: must be a non-negative decimal with at most 2 places'],
    ['empty price', { price: '' }, 'price: must be a non-negative decimal'],
    ['Feb 30', { shipping_limit_date: '2017-02-30 10:00:00' }, 'shipping_limit_date: must be a valid UTC timestamp YYYY-MM-DD HH:MM:SS (got "2017-02-30 10:00:00")'],
    ['25 h', { shipping_limit_date: '2017-02-03 25:00:00' }, 'shipping_limit_date: must be a valid UTC timestamp'],
    ['ISO T', { shipping_limit_date: '2017-02-03T10:00:00' }, 'shipping_limit_date: must be a valid UTC timestamp'],
  ])('rejects an item with %s', (_name, over, reason) => {
    expect(reasonOf(validateRecord('items', item(over)))).toContain(reason);
  });

  it('lists every broken field in the reason', () => {
    const reason = reasonOf(validateRecord('items', item({ price: 'x', freight_value: '-1' })));
    expect(reason).toMatch(/^price: .*; freight_value: /);
  });

  it('rejects a wrong number of fields', () => {
    expect(reasonOf(validateRecord('items', [...item(), 'extra']))).toBe('wrong number of fields: expected 7, got 8');
    expect(reasonOf(validateRecord('sellers', ['a']))).toBe('wrong number of fields: expected 4, got 1');
  });

  it('checks order status and timestamps, empty optional dates become null', () => {
    const ok = validateRecord('orders', order());
    expect(ok.ok && ok.row.approvedAt).toBeNull();
    expect(ok.ok && ok.row.status).toBe('delivered');
    expect(reasonOf(validateRecord('orders', order({ order_status: 'lost' })))).toContain(
      'order_status: must be one of created, approved, invoiced, processing, shipped, delivered, unavailable, canceled (got "lost")',
    );
    expect(reasonOf(validateRecord('orders', order({ order_purchase_timestamp: '' })))).toContain(
      'order_purchase_timestamp: must be a valid UTC timestamp',
    );
    expect(reasonOf(validateRecord('orders', order({ order_approved_at: '2017-13-01 00:00:00' })))).toContain(
      'order_approved_at: must be empty or a valid UTC timestamp',
    );
  });

  it('checks state, zip prefix and city of sellers and customers', () => {
    expect(validateRecord('sellers', [SELLER, '09790', 'sao paulo', 'SP']).ok).toBe(true);
    expect(reasonOf(validateRecord('sellers', [SELLER, '09790', 'sao paulo', 'sp']))).toBe(
      'seller_state: must be 2 uppercase letters (got "sp")',
    );
    expect(reasonOf(validateRecord('sellers', [SELLER, '0979a', 'sao paulo', 'SP']))).toBe(
      'seller_zip_code_prefix: must be 1 to 10 digits (got "0979a")',
    );
    expect(reasonOf(validateRecord('customers', [SELLER, 'nothex', '01001', '', 'SP']))).toBe(
      'customer_unique_id: must be 32 lowercase hexadecimal characters (got "nothex"); customer_city: must be 1 to 128 characters (got "")',
    );
  });

  it('refuses a blank name or one holding control characters, for cities and categories', () => {
    const textRule = 'must hold a visible character and no control character';
    for (const city of [' ', '   ', '\u00a0', 'sao\u0000paulo', 'sao\tpaulo', 'sao\npaulo', 'sao\u0085paulo', 'sao\u2028paulo']) {
      expect(reasonOf(validateRecord('sellers', [SELLER, '09790', city, 'SP']))).toBe(`seller_city: ${textRule} (got ${JSON.stringify(city)})`);
    }
    expect(reasonOf(validateRecord('products', [PRODUCT, 'cat\u0000nul', '', '', '', '', '', '', '']))).toContain(`product_category_name: ${textRule}`);
    expect(reasonOf(validateRecord('translation', ['beleza', 'beauty\u0007']))).toContain(`product_category_name_english: ${textRule}`);
    expect(validateRecord('sellers', [SELLER, '09790', 'são paulo 🌆', 'SP']).ok).toBe(true);
  });

  it('reads money with leading zeros as the value they write', () => {
    const result = validateRecord('items', item({ price: '00000000012.50', freight_value: '0009999999999.99' }));
    expect(result.ok && [result.row.price, result.row.freightValue]).toEqual(['00000000012.50', '0009999999999.99']);
    expect(reasonOf(validateRecord('items', item({ price: '099999999999.00' })))).toContain('price: must be a non-negative decimal');
  });

  it('reads an item seq with leading zeros as the number it writes (01 is item 1); zero stays refused', () => {
    const result = validateRecord('items', item({ order_item_id: '0001' }));
    expect(result.ok && result.row.orderItemId).toBe(1);
    expect(reasonOf(validateRecord('items', item({ order_item_id: '000' })))).toContain('order_item_id: must be a positive integer');
    expect(reasonOf(validateRecord('items', item({ order_item_id: '065536' })))).toContain('order_item_id: must be a positive integer');
  });

  it('accepts products without category or attributes, rejects bad numbers', () => {
    const ok = validateRecord('products', [PRODUCT, '', '', '', '', '650', '17', '14', '12']);
    expect(ok).toEqual({
      ok: true,
      row: {
        productId: PRODUCT,
        categoryName: null,
        nameLength: null,
        descriptionLength: null,
        photosQty: null,
        weightG: 650,
        lengthCm: 17,
        heightCm: 14,
        widthCm: 12,
      },
    });
    expect(reasonOf(validateRecord('products', [PRODUCT, 'artes', '-1', '', '', '', '', '', '']))).toBe(
      'product_name_lenght: must be empty or an integer from 0 to 65535 (got "-1")',
    );
  });

  it('requires both names of a translation', () => {
    expect(reasonOf(validateRecord('translation', ['pc_gamer', '']))).toBe(
      'product_category_name_english: must be 1 to 100 characters (got "")',
    );
  });

  it('validates calendar dates', () => {
    expect(isValidTimestamp('2016-02-29 23:59:59')).toBe(true);
    expect(isValidTimestamp('2017-02-29 00:00:00')).toBe(false);
    expect(isValidTimestamp('2017-04-31 00:00:00')).toBe(false);
    expect(isValidTimestamp('2017-01-01 23:60:00')).toBe(false);
  });

  // isValidTimestamp is shared by the fast path and the zod schemas: a mistake in it is the same
  // on both sides, so comparing the two paths cannot find it. It names a real calendar date and
  // time of day, UTC: no hour 24, no leap second (a DATETIME cannot hold :60).
  it.each([
    ['a leap day of a year divisible by 400', '2000-02-29 00:00:00', true],
    ['a leap day of a year divisible by 4 only', '2016-02-29 12:00:00', true],
    ['a leap day of a century not divisible by 400 (1900)', '1900-02-29 00:00:00', false],
    ['a leap day of a century not divisible by 400 (2100)', '2100-02-29 00:00:00', false],
    ['a leap day of a common year', '2017-02-29 00:00:00', false],
    ['February 28 of a common year', '2100-02-28 23:59:59', true],
    ['the 31st of a 30-day month', '2017-04-31 00:00:00', false],
    ['the 30th of a 30-day month', '2017-04-30 00:00:00', true],
    ['the 31st of December', '2017-12-31 00:00:00', true],
    ['month 13', '2017-13-01 00:00:00', false],
    ['month 00', '2017-00-01 00:00:00', false],
    ['day 00', '2017-01-00 00:00:00', false],
    ['the last second of a day', '2017-01-01 23:59:59', true],
    ['midnight written 00:00:00', '2017-01-01 00:00:00', true],
    ['midnight written 24:00:00', '2017-01-01 24:00:00', false],
    ['minute 60', '2017-01-01 23:60:00', false],
    ['a leap second (second 60)', '2016-12-31 23:59:60', false],
    ['the first year a DATETIME holds', '1000-01-01 00:00:00', true],
    ['a year before 1000', '0999-12-31 23:59:59', false],
    ['the last second a DATETIME holds', '9999-12-31 23:59:59', true],
    ['a date alone', '2017-01-01', false],
    ['a T between date and time', '2017-01-01T00:00:00', false],
    ['a trailing space', '2017-01-01 00:00:00 ', false],
    ['fractional seconds', '2017-01-01 00:00:00.0', false],
  ])('when a timestamp is %s (%s), then isValidTimestamp says %s', (_name, value, valid) => {
    expect(isValidTimestamp(value)).toBe(valid);
  });

  it('computes dim_date attributes (ISO weekday and week)', () => {
    expect(dateParts('2017-01-01')).toEqual({
      dateKey: '2017-01-01',
      year: 2017,
      quarter: 1,
      month: 1,
      dayOfMonth: 1,
      dayOfWeek: 7,
      isoWeek: 52,
      yearMonth: '2017-01',
    });
    expect(dateParts('2018-12-31')).toMatchObject({ dayOfWeek: 1, isoWeek: 1, quarter: 4 });
    expect(dateParts('2020-12-31')).toMatchObject({ dayOfWeek: 4, isoWeek: 53 });
  });

  it('makes time-ordered UUIDv7 batch ids', () => {
    const a = uuidv7(1_700_000_000_000);
    const b = uuidv7(1_700_000_000_001);
    expect(a).toMatch(UUID_V7_PATTERN);
    expect(a.slice(0, 13)).toBe('018bcfe5-6800');
    expect(a < b).toBe(true);
    expect(uuidv7()).not.toBe(uuidv7());
  });

  it('cuts quoted values and reasons between characters, never inside an emoji', () => {
    expect(cutAt(`${'a'.repeat(79)}😀`, 80)).toBe('a'.repeat(79));
    expect(cutAt('😀😀', 3)).toBe('😀');
    expect(cutAt('abc', 80)).toBe('abc');
    const result = validateRecord('sellers', [ID_HEX, '01001', `a${'😀'.repeat(200)}`, 'SP']);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
  });

  it('orders batch ids of the same ingestion time by the time their loads started', () => {
    const ingested = 1_700_000_000_000;
    for (let n = 0; n < 50; n += 1) {
      const started = 1_764_000_000_000 + n * 7919;
      const earlier = uuidv7(ingested, started);
      const later = uuidv7(ingested, started + 1);
      expect(earlier).toMatch(UUID_V7_PATTERN);
      expect(later).toMatch(UUID_V7_PATTERN);
      expect(earlier < later).toBe(true);
      // The ingestion time still comes first.
      expect(uuidv7(ingested + 1, started) > later).toBe(true);
    }
    expect(uuidv7(ingested, 5)).not.toBe(uuidv7(ingested, 5));
  });
});
