CREATE TABLE `dim_category_translation` (
	`category_name` varchar(100) NOT NULL,
	`category_name_english` varchar(100) NOT NULL,
	`batch_id` varchar(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`updated_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `dim_category_translation_category_name` PRIMARY KEY(`category_name`)
);
--> statement-breakpoint
CREATE TABLE `dim_customer` (
	`customer_id` char(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`customer_unique_id` char(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`zip_code_prefix` varchar(10) NOT NULL,
	`city` varchar(128) NOT NULL,
	`state` char(2) NOT NULL,
	`batch_id` varchar(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`updated_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `dim_customer_customer_id` PRIMARY KEY(`customer_id`)
);
--> statement-breakpoint
CREATE TABLE `dim_date` (
	`date_key` date NOT NULL,
	`year` smallint unsigned NOT NULL,
	`quarter` tinyint unsigned NOT NULL,
	`month` tinyint unsigned NOT NULL,
	`day_of_month` tinyint unsigned NOT NULL,
	`day_of_week` tinyint unsigned NOT NULL,
	`iso_week` tinyint unsigned NOT NULL,
	`year_month` char(7) NOT NULL,
	`batch_id` varchar(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`updated_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `dim_date_date_key` PRIMARY KEY(`date_key`)
);
--> statement-breakpoint
CREATE TABLE `dim_product` (
	`product_id` char(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`category_name` varchar(100),
	`category_name_english` varchar(100),
	`name_length` smallint unsigned,
	`description_length` int unsigned,
	`photos_qty` smallint unsigned,
	`weight_g` int unsigned,
	`length_cm` smallint unsigned,
	`height_cm` smallint unsigned,
	`width_cm` smallint unsigned,
	`batch_id` varchar(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`updated_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `dim_product_product_id` PRIMARY KEY(`product_id`)
);
--> statement-breakpoint
CREATE TABLE `dim_seller` (
	`seller_id` char(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`zip_code_prefix` varchar(10) NOT NULL,
	`city` varchar(128) NOT NULL,
	`state` char(2) NOT NULL,
	`batch_id` varchar(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`updated_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `dim_seller_seller_id` PRIMARY KEY(`seller_id`)
);
--> statement-breakpoint
CREATE TABLE `etl_batch` (
	`batch_id` varchar(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`source` varchar(128) NOT NULL,
	`created_at` datetime(3) NOT NULL,
	`status` enum('running','succeeded','failed') NOT NULL,
	`updated_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `etl_batch_batch_id` PRIMARY KEY(`batch_id`)
);
--> statement-breakpoint
CREATE TABLE `etl_batch_stage` (
	`batch_id` varchar(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`stage` enum('source','landing','bronze','silver','gold','staging','api') NOT NULL,
	`started_at` datetime(3) NOT NULL,
	`finished_at` datetime(3),
	`rows_in` bigint unsigned,
	`rows_out` bigint unsigned,
	`rows_rejected` bigint unsigned,
	`status` enum('running','succeeded','failed') NOT NULL,
	`updated_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `pk_etl_batch_stage` PRIMARY KEY(`batch_id`,`stage`)
);
--> statement-breakpoint
CREATE TABLE `etl_rejected_row` (
	`id` bigint unsigned AUTO_INCREMENT NOT NULL,
	`batch_id` varchar(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`file` varchar(255) NOT NULL,
	`line` int unsigned NOT NULL,
	`reason` varchar(1024) NOT NULL,
	`raw_content` text NOT NULL,
	`created_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `etl_rejected_row_id` PRIMARY KEY(`id`)
);
--> statement-breakpoint
CREATE TABLE `fact_order` (
	`order_id` char(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`customer_id` char(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`order_status` enum('created','approved','invoiced','processing','shipped','delivered','unavailable','canceled') NOT NULL,
	`purchased_at` datetime NOT NULL,
	`purchase_date` date NOT NULL,
	`approved_at` datetime,
	`delivered_carrier_at` datetime,
	`delivered_customer_at` datetime,
	`estimated_delivery_at` datetime,
	`batch_id` varchar(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`updated_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `fact_order_order_id` PRIMARY KEY(`order_id`)
);
--> statement-breakpoint
CREATE TABLE `fact_order_item` (
	`order_id` char(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`order_item_id` smallint unsigned NOT NULL,
	`product_id` char(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`seller_id` char(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`shipping_limit_at` datetime NOT NULL,
	`price` decimal(12,2) NOT NULL,
	`freight_value` decimal(12,2) NOT NULL,
	`purchased_at` datetime NOT NULL,
	`batch_id` varchar(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	`updated_at` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
	CONSTRAINT `pk_fact_order_item` PRIMARY KEY(`order_id`,`order_item_id`)
);
--> statement-breakpoint
CREATE INDEX `ix_product_category_english` ON `dim_product` (`category_name_english`);--> statement-breakpoint
CREATE INDEX `ix_batch_created` ON `etl_batch` (`created_at`,`batch_id`);--> statement-breakpoint
CREATE INDEX `ix_stage_status` ON `etl_batch_stage` (`stage`,`status`,`batch_id`);--> statement-breakpoint
CREATE INDEX `ix_rejected_batch` ON `etl_rejected_row` (`batch_id`,`file`,`line`);--> statement-breakpoint
CREATE INDEX `ix_order_customer` ON `fact_order` (`customer_id`);--> statement-breakpoint
CREATE INDEX `ix_order_purchase_date` ON `fact_order` (`purchase_date`);--> statement-breakpoint
CREATE INDEX `ix_item_seller_purchased` ON `fact_order_item` (`seller_id`,`purchased_at`,`order_id`,`order_item_id`);--> statement-breakpoint
CREATE INDEX `ix_item_seller_summary` ON `fact_order_item` (`seller_id`,`purchased_at`,`product_id`,`price`,`freight_value`);--> statement-breakpoint
CREATE INDEX `ix_item_product` ON `fact_order_item` (`product_id`);