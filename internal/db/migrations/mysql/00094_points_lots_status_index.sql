-- +goose Up
-- The liability report's expiry schedule (points/report.go, shown on the
-- dashboard): the merchant's active lots grouped by expiry, summing what
-- is left of them, from the index alone. idx_points_lots_member leads with
-- the member, so it made the report read every lot row of the merchant.
CREATE INDEX idx_points_lots_status ON points_lots (merchant_id, status, expires_at, remaining);

-- +goose Down
DROP INDEX idx_points_lots_status ON points_lots;
