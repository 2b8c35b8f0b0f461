import type { FastifyInstance } from 'fastify';
import { requireTenant } from '../../plugins/auth.js';
import { notFound } from '../../http/problem.js';
import { NOT_FOUND_RESPONSE, PROBLEM_RESPONSES } from '../../http/responses.js';
import { defineRoute, NoQuery } from '../../http/route.js';
import { FRESHNESS_RESPONSE_HEADER } from '../freshness/tracker.js';
import { toOrderItem } from '../order-items/repository.js';
import { Order, OrderParams } from './schemas.js';

export default async function orderRoutes(app: FastifyInstance): Promise<void> {
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/orders/:orderId',
      operationId: 'getOrder',
      summary: "An order with the seller's items in it",
      description: 'An order in which the seller has no item gives the same 404 as an order that does not exist.',
      tags: ['orders'],
      access: { kind: 'tenant', scope: 'order-items:read' },
      querystring: NoQuery,
      params: OrderParams,
      responses: { 200: { description: 'The order', schema: Order, headers: FRESHNESS_RESPONSE_HEADER }, ...PROBLEM_RESPONSES, ...NOT_FOUND_RESPONSE },
    },
    async (request, reply) => {
      const scope = requireTenant(request);
      const [newest, rows] = await Promise.all([app.freshness.newest(), app.orders.getForSeller(scope, request.params.orderId)]);
      const first = rows[0];
      if (first === undefined) throw notFound('order not found');
      app.markServed(request, reply, newest);
      return {
        orderId: first.order_id,
        status: first.order_status,
        purchasedAt: first.purchased_iso,
        approvedAt: first.approved_iso,
        deliveredCarrierAt: first.delivered_carrier_iso,
        deliveredCustomerAt: first.delivered_customer_iso,
        estimatedDeliveryAt: first.estimated_delivery_iso,
        customerState: first.customer_state,
        items: rows.map(toOrderItem),
      };
    },
  );
}
