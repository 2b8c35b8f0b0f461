-- Custom migration: fills the daily summary from the wide read model that exists before it.
-- Later batches keep it current through the loader (recompute of the pairs each batch marks).
INSERT INTO `order_item_daily_summary` (`seller_id`, `purchase_date`, `category_key`, `item_count`, `revenue`, `freight`)
SELECT w.seller_id, DATE(w.purchased_at), COALESCE(w.product_category, ''), COUNT(*), SUM(w.price), SUM(w.freight_value)
  FROM order_item_wide w
 GROUP BY w.seller_id, DATE(w.purchased_at), COALESCE(w.product_category, '');
