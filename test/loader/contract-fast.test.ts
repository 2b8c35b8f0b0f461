// The loader's hot path validates rows with hand-written checks (FAST_VALIDATORS) and falls back
// to the zod schemas only for rows they refuse. The zod schemas are the contract: on any record,
// validateRecord must give exactly what validateWithZod gives (same verdict, same row, same reason).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ORDER_STATUSES } from '../../src/db/schema.js';
import { FAST_VALIDATORS, HEADERS, LOAD_ORDER, validateRecord, validateWithZod, type FileKind } from '../../src/loader/contract.js';

// Valid values and near misses for every kind of field.
const POOL = [
  '',
  ' ',
  '0',
  '1',
  '01',
  '9',
  '65535',
  '65536',
  '99999',
  '100000',
  '4294967295',
  '4294967296',
  '12345678901',
  '-1',
  '1.5',
  '0.00',
  '58.90',
  '58.9',
  '58.901',
  '1234567890.12',
  '12345678901.1',
  '.5',
  '5.',
  '1e3',
  'SP',
  'sp',
  'S',
  'SPX',
  'campinas',
  'sao paulo',
  'x'.repeat(100),
  'x'.repeat(101),
  'x'.repeat(128),
  'x'.repeat(129),
  'delivered',
  'canceled',
  'Delivered',
  'cancelled',
  '00010242fe8c5a6d1ba2dd792cb16214',
  '00010242FE8C5A6D1BA2DD792CB16214',
  '00010242fe8c5a6d1ba2dd792cb1621',
  '00010242fe8c5a6d1ba2dd792cb162145',
  '00010242fe8c5a6d1ba2dd792cb1621g',
  '2017-09-13 04:08:35',
  '2016-02-29 00:00:00',
  '2017-02-29 00:00:00',
  '2000-02-29 23:59:59',
  '1900-02-29 12:00:00',
  '2017-02-30 00:00:00',
  '2017-04-31 00:00:00',
  '2017-13-01 00:00:00',
  '2017-00-10 00:00:00',
  '2017-01-00 00:00:00',
  '2017-01-01 24:00:00',
  '2017-01-01 23:60:00',
  '2017-01-01 23:59:60',
  '0999-01-01 00:00:00',
  '2017-01-01T00:00:00',
  '2017-01-01 00:00:00 ',
  '2017-1-01 00:00:00',
  '２０17-01-01 00:00:00',
  'perfumaria',
  'health_beauty',
];

/** Records of the right width mixing valid values and near misses, plus ragged ones. */
function records(kind: FileKind): fc.Arbitrary<string[]> {
  const width = HEADERS[kind].length;
  const field = fc.oneof(fc.constantFrom(...POOL), fc.string({ maxLength: 40 }));
  return fc.oneof(
    fc.array(field, { minLength: width, maxLength: width }),
    fc.array(field, { minLength: 0, maxLength: width + 2 }),
  );
}

describe('fast validation path', () => {
  for (const kind of LOAD_ORDER) {
    it(`agrees with the zod contract on ${kind}`, () => {
      fc.assert(
        fc.property(records(kind), (fields) => {
          expect(validateRecord(kind, fields)).toEqual(validateWithZod(kind, fields));
        }),
        { numRuns: 3000, seed: 42 },
      );
    });
  }

  it('accepts valid rows without zod and builds the same row', () => {
    const order = [
      '00010242fe8c5a6d1ba2dd792cb16214',
      '00010242fe8c5a6d1ba2dd792cb16215',
      'delivered',
      '2017-09-13 04:08:35',
      '',
      '2017-09-14 04:08:35',
      '',
      '2017-10-01 00:00:00',
    ];
    expect(FAST_VALIDATORS.orders(order)).toEqual((validateWithZod('orders', order) as { row: unknown }).row);
    const product = ['00010242fe8c5a6d1ba2dd792cb16214', '', '', '0', '65535', '4294967295', '', '1', ''];
    expect(FAST_VALIDATORS.products(product)).toEqual((validateWithZod('products', product) as { row: unknown }).row);
  });

  it('counts a name\'s length in characters, as the contract does: names of emoji near the limits take the fast path', () => {
    for (const [kind, fields, index] of [
      ['translation', ['😀'.repeat(100), 'perfumery'], 0],
      ['sellers', ['a'.repeat(32), '13023', '😀'.repeat(128), 'SP'], 2],
    ] as const) {
      expect(FAST_VALIDATORS[kind]([...fields]), kind).toEqual((validateWithZod(kind, [...fields]) as { row: unknown }).row);
      const over = [...fields];
      over[index] = `${over[index] ?? ''}😀`;
      expect(FAST_VALIDATORS[kind](over), `${kind} over the limit`).toBeUndefined();
      expect(validateWithZod(kind, over).ok, `${kind} over the limit`).toBe(false);
    }
  });

  // Random records are nearly always invalid somewhere, so the comparison above mostly sees
  // rejections. These start from a valid row and change one field at a time: a fast path that
  // accepts what the contract refuses, or builds another row, shows up on the field it gets wrong.
  // (One that refuses a valid row only costs time: validateRecord then asks zod, which accepts.)
  const VALID: Record<FileKind, string[][]> = {
    translation: [['perfumaria', 'perfumery']],
    sellers: [['a'.repeat(32), '13023', 'campinas', 'SP']],
    customers: [['c'.repeat(31) + '1', 'd'.repeat(32), '14409', 'franca', 'SP']],
    products: [
      ['e'.repeat(31) + '1', 'perfumaria', '40', '287', '1', '225', '16', '10', '14'],
      ['e'.repeat(31) + '2', '', '', '', '', '', '', '', ''],
    ],
    orders: [
      ['0'.repeat(31) + '1', 'c'.repeat(31) + '1', 'delivered', '2017-09-13 04:08:35', '2017-09-13 11:05:35', '2017-09-14 11:05:35', '2017-09-26 01:54:28', '2017-10-03 00:00:00'],
      ['0'.repeat(31) + '2', 'c'.repeat(31) + '2', 'created', '2018-01-01 10:00:00', '', '', '', '2018-01-25 00:00:00'],
    ],
    items: [['0'.repeat(31) + '1', '1', 'e'.repeat(31) + '1', 'a'.repeat(32), '2017-09-19 09:45:35', '58.90', '13.29']],
  };

  /** A valid value and its near misses: emptied, padded, case flipped, cut, lengthened, prefixed. */
  const variantsOf = (value: string): string[] => [
    value,
    '',
    ' ',
    '\t',
    ` ${value}`,
    `${value} `,
    `${value}\u0000`,
    value.toUpperCase(),
    value.toLowerCase(),
    value.slice(0, -1),
    `${value}${value.slice(-1)}`,
    `0${value}`,
    `-${value}`,
    `+${value}`,
    value.replace(' ', 'T'),
  ];

  /** Boundaries of every field kind, valid ones and the first invalid one past them. */
  const BOUNDARIES = [
    ...ORDER_STATUSES,
    ...ORDER_STATUSES.map((s) => s.toUpperCase()),
    'cancelled',
    ' delivered',
    '00',
    '000',
    '065535',
    '0065536',
    '4294967295',
    '04294967295',
    '4294967296',
    '9999999999.99',
    '99999999999.99',
    '0009999999999.99',
    '0.0',
    '0.001',
    '1.',
    '-0',
    '+1',
    'Sp',
    'S1',
    'ÀÉ',
    '1234567890',
    '12345678901',
    '0000000000',
    '1000-01-01 00:00:00',
    '9999-12-31 23:59:59',
    '0000-00-00 00:00:00',
    '2000-02-29 00:00:00',
    '2100-02-29 00:00:00',
    '2017-06-31 00:00:00',
    '2017-01-01 00:00:00Z',
    '2017-01-01 00:00:00.000',
    '2017-01-01',
    '2017-01-01 0:00:00',
    'são paulo 🌆',
    '\u00a0',
    'a\u00a0',
    'sao\u2028paulo',
    'sao\u0085paulo',
    'x '.repeat(50).trimEnd(),
    'é'.repeat(100),
    'é'.repeat(101),
    '😀'.repeat(50),
    '😀'.repeat(51),
  ];

  for (const kind of LOAD_ORDER) {
    it(`when one field of a valid ${kind} row changes, then the fast path accepts nothing zod refuses and builds zod's row`, () => {
      const fast = FAST_VALIDATORS[kind] as (fields: readonly string[]) => unknown;
      let accepted = 0;
      let refused = 0;
      for (const valid of VALID[kind]) {
        const contract = validateWithZod(kind, valid);
        expect(contract.ok, `${kind} ${JSON.stringify(valid)} must be a valid row`).toBe(true);
        // The row it starts from passes the fast path itself (zod is not what accepted it).
        expect(fast(valid)).toEqual(contract.ok ? contract.row : undefined);
        for (let field = 0; field < valid.length; field += 1) {
          const original = valid[field] ?? '';
          for (const value of new Set([...variantsOf(original), ...POOL, ...BOUNDARIES])) {
            const fields = valid.map((v, i) => (i === field ? value : v));
            const expected = validateWithZod(kind, fields);
            const what = `${kind}.${HEADERS[kind][field]} = ${JSON.stringify(value)}`;
            const row = fast(fields);
            if (row !== undefined) expect(expected, what).toEqual({ ok: true, row });
            expect(validateRecord(kind, fields), what).toEqual(expected);
            if (expected.ok) accepted += 1;
            else refused += 1;
          }
        }
      }
      // Both verdicts came up for every field (its own value kept, a blank refused), not only rejections.
      const fields = VALID[kind].length * HEADERS[kind].length;
      expect(accepted).toBeGreaterThanOrEqual(fields);
      expect(refused).toBeGreaterThanOrEqual(2 * fields);
    });
  }
});
