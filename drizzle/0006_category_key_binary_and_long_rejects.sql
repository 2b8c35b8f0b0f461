ALTER TABLE `dim_category_translation` MODIFY COLUMN `category_name` varchar(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;--> statement-breakpoint
ALTER TABLE `dim_product` MODIFY COLUMN `category_name` varchar(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;--> statement-breakpoint
ALTER TABLE `etl_rejected_row` MODIFY COLUMN `raw_content` mediumtext NOT NULL;