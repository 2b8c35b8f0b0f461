// Decorates the app with its repositories, bound to the database and to the read model this
// deployment serves from (READ_MODEL). Routes reach data only through these.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { readModel } from '../modules/order-items/read-models.js';
import { OrderItemRepository } from '../modules/order-items/repository.js';
import { OrderRepository } from '../modules/orders/repository.js';

declare module 'fastify' {
  interface FastifyInstance {
    orderItems: OrderItemRepository;
    orders: OrderRepository;
  }
}

async function repositoriesPlugin(app: FastifyInstance, options: { config: Config }): Promise<void> {
  const model = readModel(options.config.readModel);
  app.decorate('orderItems', new OrderItemRepository(app.db, model));
  app.decorate('orders', new OrderRepository(app.db, model));
  app.log.info({ readModel: model.name }, 'serving order items from the %s read model', model.name);
}

export default fp(repositoriesPlugin, { name: 'repositories', fastify: '5.x', dependencies: ['db'] });
