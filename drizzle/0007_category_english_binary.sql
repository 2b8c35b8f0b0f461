ALTER TABLE `dim_category_translation` MODIFY COLUMN `category_name_english` varchar(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;--> statement-breakpoint
ALTER TABLE `dim_product` MODIFY COLUMN `category_name_english` varchar(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;--> statement-breakpoint
ALTER TABLE `order_item_daily_summary` MODIFY COLUMN `category_key` varchar(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;--> statement-breakpoint
ALTER TABLE `order_item_wide` MODIFY COLUMN `product_category` varchar(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;