-- +goose Up
-- "Days since the last order" (segments, the lifecycle job's at-risk and
-- churn thresholds) is a range on last_order_at within a merchant.
CREATE INDEX idx_members_last_order ON members (merchant_id, last_order_at);

-- +goose Down
DROP INDEX idx_members_last_order;
