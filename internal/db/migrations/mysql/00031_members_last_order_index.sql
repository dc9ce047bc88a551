-- +goose Up
-- "Days since the last order" (segments, the lifecycle job's at-risk and
-- churn thresholds) is a range on last_order_at within a merchant.
ALTER TABLE members ADD INDEX idx_members_last_order (merchant_id, last_order_at);

-- +goose Down
ALTER TABLE members DROP INDEX idx_members_last_order;
