// Every tenant route gets a cross-tenant case, and the route table is walked so that a new data
// route without one fails this file.
import type { FastifyInstance } from 'fastify';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { SELLERS, seedMarketplace, type FixtureItem } from '../helpers/fixtures.js';
import { bearer, mintToken } from '../helpers/tokens.js';

let db: TestDatabase;
let app: FastifyInstance;
let items: FixtureItem[];
const attacker = SELLERS.alpha;
const attackerHeaders = bearer(mintToken({ sellerId: attacker }));

/** An item of another seller in an order where the attacker has nothing. */
function victimOnlyItem(): FixtureItem {
  const found = items.find((item) => item.sellerId !== attacker && !items.some((o) => o.orderId === item.orderId && o.sellerId === attacker));
  if (found === undefined) throw new Error('fixture has no order without the attacker');
  return found;
}

/** An item of another seller in an order the attacker shares. */
function victimItemInSharedOrder(): FixtureItem {
  const found = items.find((item) => item.sellerId !== attacker && items.some((o) => o.orderId === item.orderId && o.sellerId === attacker));
  if (found === undefined) throw new Error('fixture has no shared order');
  return found;
}

async function missing(url: string): Promise<request.Response> {
  return request(app.server).get(url).set(attackerHeaders);
}

const CROSS_TENANT_CASES: Record<string, () => Promise<void>> = {
  async listOrderItems() {
    const victim = victimItemInSharedOrder();
    const byOrder = await missing(`/v1/order-items?orderId=${victim.orderId}&limit=200`);
    expect(byOrder.status).toBe(200);
    expect(byOrder.body.items.length).toBeGreaterThan(0);
    expect(byOrder.body.items.every((item: { sellerId: string }) => item.sellerId === attacker)).toBe(true);
    const other = await missing(`/v1/order-items?orderId=${victimOnlyItem().orderId}`);
    expect(other.body.items).toEqual([]);
    // A cursor from the victim's own pages is refused.
    const victimPage = await request(app.server).get('/v1/order-items?limit=1').set(bearer(mintToken({ sellerId: victim.sellerId }))).expect(200);
    const replay = await missing(`/v1/order-items?limit=1&cursor=${encodeURIComponent(victimPage.body.nextCursor)}`);
    expect(replay.status).toBe(400);
  },
  async getOrderItem() {
    for (const victim of [victimOnlyItem(), victimItemInSharedOrder()]) {
      const foreign = await missing(`/v1/order-items/${victim.orderId}/${victim.orderItemId}`);
      const absent = await missing(`/v1/order-items/${'e'.repeat(32)}/${victim.orderItemId}`);
      expect(foreign.status).toBe(404);
      expect(foreign.text).toBe(absent.text);
      expect(foreign.headers['content-type']).toBe(absent.headers['content-type']);
    }
  },
  async getOrder() {
    const victim = victimOnlyItem();
    const foreign = await missing(`/v1/orders/${victim.orderId}`);
    const absent = await missing(`/v1/orders/${'e'.repeat(32)}`);
    expect(foreign.status).toBe(404);
    expect(foreign.text).toBe(absent.text);
    const shared = victimItemInSharedOrder();
    const sharedOrder = await missing(`/v1/orders/${shared.orderId}`);
    expect(sharedOrder.status).toBe(200);
    expect(sharedOrder.body.items.every((item: { sellerId: string }) => item.sellerId === attacker)).toBe(true);
    expect(sharedOrder.body.items.some((item: { orderItemId: number }) => item.orderItemId === shared.orderItemId)).toBe(false);
  },
  async summarizeOrderItems() {
    const own = items.filter((item) => item.sellerId === attacker);
    const response = await missing('/v1/order-items/summary?groupBy=month');
    const counted = response.body.buckets.reduce((total: number, bucket: { itemCount: number }) => total + bucket.itemCount, 0);
    expect(counted).toBe(own.length);
    // A window that cuts days in two is read from the items for its partial days and from the
    // daily totals for the whole ones: both paths must count the attacker's items only.
    const times = items.map((item) => Date.parse(`${item.purchasedAt.replace(' ', 'T')}Z`)).sort((a, b) => a - b);
    // Items are bought at 12:00–15:00 every fifth day: these bounds cut the first and last days.
    const from = new Date((times[0] ?? 0) + 90 * 60_000).toISOString();
    const to = new Date((times.at(-1) ?? 0) - 90 * 60_000).toISOString();
    const inWindow = own.filter((item) => {
      const at = Date.parse(`${item.purchasedAt.replace(' ', 'T')}Z`);
      return at >= Date.parse(from) && at < Date.parse(to);
    });
    expect(inWindow.length).toBeGreaterThan(0);
    expect(inWindow.length).toBeLessThan(own.length);
    for (const groupBy of ['day', 'month', 'category']) {
      const windowed = await missing(`/v1/order-items/summary?groupBy=${groupBy}&from=${from}&to=${to}`);
      expect(windowed.status).toBe(200);
      const total = windowed.body.buckets.reduce((sum: number, bucket: { itemCount: number }) => sum + bucket.itemCount, 0);
      expect(total, groupBy).toBe(inWindow.length);
    }
  },
};

beforeAll(async () => {
  db = await createTestDatabase('isolation');
  items = await seedMarketplace(db.pool, 30);
  app = await buildTestApp(db.url);
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

describe('cross-tenant isolation', () => {
  it('every tenant-scoped route in the route table has a cross-tenant case here', () => {
    const tenantRoutes = app
      .routeSpecs()
      .filter((spec) => spec.access.kind === 'tenant')
      .map((spec) => spec.operationId);
    expect(tenantRoutes.length).toBeGreaterThanOrEqual(4);
    const uncovered = tenantRoutes.filter((operationId) => !(operationId in CROSS_TENANT_CASES));
    expect(uncovered, 'tenant routes without a cross-tenant test').toEqual([]);
  });

  it('every /v1 route declares who may call it, and only pipeline routes are not tenant-scoped', () => {
    for (const spec of app.routeSpecs()) {
      if (!spec.url.startsWith('/v1')) continue;
      expect(spec.access.kind === 'tenant' || spec.url.startsWith('/v1/pipeline')).toBe(true);
    }
  });

  it.each(Object.keys(CROSS_TENANT_CASES))('%s never shows another seller’s rows', async (operationId) => {
    await CROSS_TENANT_CASES[operationId]?.();
  });

  it('a tenant scope cannot be made outside the auth plugin', async () => {
    const { TenantScope, sellerIdOf } = await import('../../src/auth/tenant-scope.js');
    expect(() => TenantScope.claimIssuer()).toThrow(/auth plugin/);
    expect(() => sellerIdOf({ sellerId: attacker } as unknown as Parameters<typeof sellerIdOf>[0])).toThrow(/not issued/);
    // Not even an object of the class itself: only the instances the issuer made are known.
    const lookalike = Object.assign(Object.create(TenantScope.prototype) as object, { sellerId: attacker });
    expect(() => sellerIdOf(lookalike as Parameters<typeof sellerIdOf>[0])).toThrow(/not issued/);
  });
});
