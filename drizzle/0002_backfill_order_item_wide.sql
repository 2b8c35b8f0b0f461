-- Custom migration: fills the wide read model from the star tables that exist before it.
-- Later batches keep it current through the loader.
INSERT INTO `order_item_wide` (`seller_id`, `purchased_at`, `order_id`, `order_item_id`, `product_id`, `product_category`,
  `price`, `freight_value`, `shipping_limit_at`, `order_status`, `approved_at`, `delivered_carrier_at`,
  `delivered_customer_at`, `estimated_delivery_at`, `customer_state`, `batch_id`)
SELECT i.seller_id, i.purchased_at, i.order_id, i.order_item_id, i.product_id, p.category_name_english,
       i.price, i.freight_value, i.shipping_limit_at, o.order_status, o.approved_at, o.delivered_carrier_at,
       o.delivered_customer_at, o.estimated_delivery_at, c.state, i.batch_id
  FROM fact_order_item i
  JOIN fact_order o ON o.order_id = i.order_id
  LEFT JOIN dim_product p ON p.product_id = i.product_id
  LEFT JOIN dim_customer c ON c.customer_id = o.customer_id;
