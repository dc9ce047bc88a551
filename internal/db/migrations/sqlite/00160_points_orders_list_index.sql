-- +goose Up
-- The admin order list (points/orders_list.go); see the MySQL migration.
CREATE INDEX idx_points_orders_list ON points_orders (merchant_id, ordered_at, id);

-- +goose Down
DROP INDEX idx_points_orders_list;
