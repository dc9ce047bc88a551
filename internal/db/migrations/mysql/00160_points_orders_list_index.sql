-- +goose Up
-- The admin order list (points/orders_list.go: GET /orders), newest order
-- time first in keyset pages of (ordered_at, id), optionally within a
-- date range: the index gives that order directly, so a page reads its
-- rows and no more, however many orders the merchant has. (The member's
-- orders use idx_points_orders_member, whose hidden primary-key suffix
-- gives the same order.)
CREATE INDEX idx_points_orders_list ON points_orders (merchant_id, ordered_at, id);

-- +goose Down
DROP INDEX idx_points_orders_list ON points_orders;
