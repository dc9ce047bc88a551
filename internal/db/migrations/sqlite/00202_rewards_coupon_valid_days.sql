-- +goose Up
-- How many days a coupon reward's coupon stays valid; see the MySQL migration.
ALTER TABLE points_rewards ADD COLUMN coupon_valid_days INTEGER NOT NULL DEFAULT 30;

-- +goose Down
ALTER TABLE points_rewards DROP COLUMN coupon_valid_days;
