// Why the routes serialize with fast-json-stringify compiled from the zod schemas instead of a
// zod parse + JSON.stringify (what fastify-type-provider-zod does): the list response, 50 items.
//   npx tsx bench/serializer.ts
import fastJson from 'fast-json-stringify';
import { toRuntimeSchema } from '../src/http/route.js';
import { OrderItemPage } from '../src/modules/order-items/schemas.js';

const page = {
  items: Array.from({ length: 50 }, (_, n) => ({
    orderId: n.toString(16).padStart(32, 'a'),
    orderItemId: (n % 3) + 1,
    productId: n.toString(16).padStart(32, 'b'),
    productCategory: n % 5 === 0 ? null : 'health_beauty',
    sellerId: 'c'.repeat(32),
    price: `${100 + n}.90`,
    freightValue: '12.34',
    shippingLimitAt: '2017-09-19T09:45:35Z',
    orderStatus: 'delivered' as const,
    purchasedAt: '2017-09-13T08:59:02Z',
    customerState: 'SP',
    batchId: '0193a1f4-6c2e-7b3a-9d10-5f2b8e7c4a11',
  })),
  nextCursor: 'WyJreGhUYkhxUGwxanoiLCIyMDE4LTA4LTMxIDE0OjAwOjI2Il0.s6o_5YAv4qqDrreiVzYmjA',
  freshness: { batchId: '0193a1f4-6c2e-7b3a-9d10-5f2b8e7c4a11', ingestedAt: '2026-11-28T14:37:19.444Z', ageSeconds: 263 },
};

const compiled = fastJson(toRuntimeSchema(OrderItemPage, 'output'));
const variants: [string, () => string][] = [
  ['fast-json-stringify (compiled from zod, what the routes use)', () => compiled(page)],
  ['zod parse + JSON.stringify (type-provider-zod style)', () => JSON.stringify(OrderItemPage.parse(page))],
  ['JSON.stringify alone (no schema: would leak undocumented fields)', () => JSON.stringify(page)],
];
if (compiled(page) !== JSON.stringify(OrderItemPage.parse(page))) throw new Error('serializers disagree');

for (let round = 0; round < 3; round += 1) {
  for (const [name, run] of variants) {
    const iterations = 20_000;
    for (let i = 0; i < 2_000; i += 1) run();
    const started = process.hrtime.bigint();
    for (let i = 0; i < iterations; i += 1) run();
    const micros = Number(process.hrtime.bigint() - started) / 1000 / iterations;
    if (round === 2) console.log(`${name.padEnd(66)} ${micros.toFixed(1).padStart(7)} µs per 50-item page  (${Math.round(1e6 / micros)} pages/s)`);
  }
}
