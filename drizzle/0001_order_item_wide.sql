CREATE TABLE `order_item_wide` (
	`seller_id` char(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`purchased_at` datetime NOT NULL,
	`order_id` char(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`order_item_id` smallint unsigned NOT NULL,
	`product_id` char(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`product_category` varchar(100),
	`price` decimal(12,2) NOT NULL,
	`freight_value` decimal(12,2) NOT NULL,
	`shipping_limit_at` datetime NOT NULL,
	`order_status` enum('created','approved','invoiced','processing','shipped','delivered','unavailable','canceled') NOT NULL,
	`approved_at` datetime,
	`delivered_carrier_at` datetime,
	`delivered_customer_at` datetime,
	`estimated_delivery_at` datetime,
	`customer_state` char(2),
	`batch_id` varchar(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`updated_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `pk_order_item_wide` PRIMARY KEY(`seller_id`,`purchased_at`,`order_id`,`order_item_id`),
	CONSTRAINT `ux_wide_order_item` UNIQUE(`order_id`,`order_item_id`)
);
--> statement-breakpoint
CREATE INDEX `ix_wide_product` ON `order_item_wide` (`product_id`);