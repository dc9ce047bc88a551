-- +goose Up
-- Orders of a period across members (points/dashboard.go,
-- member/dashboard.go); see the MySQL migration.
CREATE INDEX idx_points_orders_time ON points_orders (merchant_id, ordered_at, member_id, amount_fen, refunded_fen);

-- +goose Down
DROP INDEX idx_points_orders_time;
