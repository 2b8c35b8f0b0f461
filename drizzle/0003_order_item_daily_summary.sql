CREATE TABLE `order_item_daily_summary` (
	`seller_id` char(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`purchase_date` date NOT NULL,
	`category_key` varchar(100) NOT NULL,
	`item_count` int unsigned NOT NULL,
	`revenue` decimal(18,2) NOT NULL,
	`freight` decimal(18,2) NOT NULL,
	`updated_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `pk_order_item_daily_summary` PRIMARY KEY(`seller_id`,`purchase_date`,`category_key`)
);
--> statement-breakpoint
CREATE TABLE `order_item_summary_mark` (
	`batch_id` varchar(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`writer` smallint unsigned NOT NULL,
	`seller_id` char(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`purchase_date` date NOT NULL,
	CONSTRAINT `pk_order_item_summary_mark` PRIMARY KEY(`batch_id`,`writer`,`seller_id`,`purchase_date`)
);
