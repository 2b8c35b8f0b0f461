// The loader's hot path validates rows with hand-written checks (FAST_VALIDATORS) and falls back
// to the zod schemas only for rows they refuse. The zod schemas are the contract: on any record,
// validateRecord must give exactly what validateWithZod gives (same verdict, same row, same reason).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
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
});
