-- +goose Up
-- Orders of a period across members (points/dashboard.go: repeat-purchase
-- rate, cohort retention; member/dashboard.go: active members): a range of
-- order times that carries the member and the amounts, so "counted orders
-- (refunded_fen < amount_fen) of the period per member" reads no rows.
CREATE INDEX idx_points_orders_time ON points_orders (merchant_id, ordered_at, member_id, amount_fen, refunded_fen);

-- +goose Down
DROP INDEX idx_points_orders_time ON points_orders;
