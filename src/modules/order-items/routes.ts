import type { FastifyInstance } from 'fastify';
import { requireTenant } from '../../plugins/auth.js';
import { CursorCodec, CursorError } from '../../http/cursor.js';
import { badRequest, notFound } from '../../http/problem.js';
import { NOT_FOUND_RESPONSE, PROBLEM_RESPONSES } from '../../http/responses.js';
import { defineRoute, NoQuery } from '../../http/route.js';
import { isoSecondToSql, parseIsoInstant, toSqlTimestamp } from '../../http/timestamps.js';
import { FRESHNESS_RESPONSE_HEADER } from '../freshness/tracker.js';
import { toOrderItem, type KeysetPosition, type OrderItemFilter } from './repository.js';
import { ListOrderItemsQuery, OrderItem, OrderItemPage, OrderItemParams, Summary, SummaryQuery } from './schemas.js';

const SQL_SECOND = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;
const ORDER_ID = /^[0-9a-f]{32}$/;

interface Range {
  from?: string;
  to?: string;
  fromMs?: number;
  toMs?: number;
}

function parseRange(query: { from?: string | undefined; to?: string | undefined }): Range {
  const range: Range = {};
  for (const name of ['from', 'to'] as const) {
    const text = query[name];
    if (text === undefined) continue;
    const ms = parseIsoInstant(text);
    // Up to the last whole day a DATE column can follow (the summary reads the day after `from`).
    if (ms === null || ms < Date.UTC(1000, 0, 1) || ms >= Date.UTC(9999, 11, 31)) {
      throw badRequest({ name, in: 'query', reason: 'must be an ISO 8601 date or date-time from 1000-01-01 to 9999-12-30' });
    }
    range[name] = toSqlTimestamp(ms);
    range[name === 'from' ? 'fromMs' : 'toMs'] = ms;
  }
  if (range.fromMs !== undefined && range.toMs !== undefined && range.toMs < range.fromMs) {
    throw badRequest({ name: 'to', in: 'query', reason: 'must not be before from' });
  }
  return range;
}

export default async function orderItemRoutes(app: FastifyInstance, options: { cursors: CursorCodec; summaryMaxRangeDays: number }): Promise<void> {
  const { cursors, summaryMaxRangeDays } = options;

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/order-items',
      operationId: 'listOrderItems',
      summary: "The seller's order items, newest purchase first",
      description: 'Keyset pagination: pass `nextCursor` as `cursor` with the same filters to get the next page.',
      tags: ['order-items'],
      access: { kind: 'tenant', scope: 'order-items:read' },
      querystring: ListOrderItemsQuery,
      responses: {
        200: { description: 'A page of order items', schema: OrderItemPage, headers: FRESHNESS_RESPONSE_HEADER },
        ...PROBLEM_RESPONSES,
      },
    },
    async (request, reply) => {
      const scope = requireTenant(request);
      const { limit, cursor, status, category, orderId } = request.query;
      const range = parseRange(request.query);
      const filter: OrderItemFilter = {
        ...(range.from === undefined ? {} : { from: range.from }),
        ...(range.to === undefined ? {} : { to: range.to }),
        ...(status === undefined ? {} : { status }),
        ...(category === undefined ? {} : { category }),
        ...(orderId === undefined ? {} : { orderId }),
      };
      const filterKey = JSON.stringify([filter.from ?? null, filter.to ?? null, status ?? null, category ?? null, orderId ?? null]);
      let after: KeysetPosition | null = null;
      if (cursor !== undefined) {
        try {
          const [purchasedAt, cursorOrderId, orderItemId] = cursors.decode(scope.sellerId, filterKey, cursor);
          if (
            typeof purchasedAt !== 'string' ||
            !SQL_SECOND.test(purchasedAt) ||
            typeof cursorOrderId !== 'string' ||
            !ORDER_ID.test(cursorOrderId) ||
            typeof orderItemId !== 'number' ||
            !Number.isInteger(orderItemId)
          ) {
            throw new CursorError('is malformed');
          }
          after = { purchasedAt, orderId: cursorOrderId, orderItemId };
        } catch (error) {
          if (error instanceof CursorError) throw badRequest({ name: 'cursor', in: 'query', reason: error.message });
          throw error;
        }
      }
      const [newest, rows] = await Promise.all([
        app.freshness.newest(),
        app.orderItems.list(scope, filter, after, limit),
      ]);
      const freshness = app.markServed(request, reply, newest);
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        items: page.map(toOrderItem),
        nextCursor:
          rows.length > limit && last !== undefined
            ? cursors.encode(scope.sellerId, filterKey, [isoSecondToSql(last.purchased_iso), last.order_id, last.order_item_id])
            : null,
        freshness,
      };
    },
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/order-items/summary',
      operationId: 'summarizeOrderItems',
      summary: "Item count, revenue and freight of the seller's items by day, month or category",
      description: `Buckets ordered by key. When both are given, \`to - from\` may span at most ${summaryMaxRangeDays} days.`,
      tags: ['order-items'],
      access: { kind: 'tenant', scope: 'order-items:read' },
      querystring: SummaryQuery,
      responses: { 200: { description: 'The buckets', schema: Summary, headers: FRESHNESS_RESPONSE_HEADER }, ...PROBLEM_RESPONSES },
    },
    async (request, reply) => {
      const scope = requireTenant(request);
      const range = parseRange(request.query);
      if (range.fromMs !== undefined && range.toMs !== undefined && range.toMs - range.fromMs > summaryMaxRangeDays * 86_400_000) {
        throw badRequest({ name: 'to', in: 'query', reason: `must be at most ${summaryMaxRangeDays} days after from` });
      }
      const [newest, rows] = await Promise.all([
        app.freshness.newest(),
        app.orderItems.summarize(scope, request.query.groupBy, {
          ...(range.from === undefined ? {} : { from: range.from }),
          ...(range.to === undefined ? {} : { to: range.to }),
        }),
      ]);
      app.markServed(request, reply, newest);
      return {
        buckets: rows.map((row) => ({
          key: row.bucket,
          itemCount: Number(row.item_count),
          revenue: row.revenue,
          freight: row.freight,
        })),
      };
    },
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/order-items/:orderId/:orderItemId',
      operationId: 'getOrderItem',
      summary: 'One order item of the seller',
      description: 'An item that does not exist and an item of another seller give the same 404.',
      tags: ['order-items'],
      access: { kind: 'tenant', scope: 'order-items:read' },
      querystring: NoQuery,
      params: OrderItemParams,
      responses: { 200: { description: 'The order item', schema: OrderItem, headers: FRESHNESS_RESPONSE_HEADER }, ...PROBLEM_RESPONSES, ...NOT_FOUND_RESPONSE },
    },
    async (request, reply) => {
      const scope = requireTenant(request);
      const [newest, row] = await Promise.all([
        app.freshness.newest(),
        app.orderItems.get(scope, request.params.orderId, request.params.orderItemId),
      ]);
      if (row === null) throw notFound('order item not found');
      app.markServed(request, reply, newest);
      return toOrderItem(row);
    },
  );
}
