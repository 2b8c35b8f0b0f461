ALTER TABLE `dim_date` ADD `iso_year` smallint unsigned NOT NULL;--> statement-breakpoint
-- Rows written before this column existed: YEARWEEK mode 3 is the ISO week, its year the ISO year.
UPDATE `dim_date` SET `iso_year` = YEARWEEK(`date_key`, 3) DIV 100;
