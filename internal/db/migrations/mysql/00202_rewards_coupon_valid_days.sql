-- +goose Up
-- How many days a coupon reward's coupon stays valid after it is redeemed
-- (never past the reward's valid_until).
ALTER TABLE points_rewards ADD COLUMN coupon_valid_days INT NOT NULL DEFAULT 30;

-- +goose Down
ALTER TABLE points_rewards DROP COLUMN coupon_valid_days;
