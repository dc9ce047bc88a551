-- +goose Up
-- The liability report's expiry schedule (points/report.go); see the MySQL
-- migration.
CREATE INDEX idx_points_lots_status ON points_lots (merchant_id, status, expires_at, remaining);

-- +goose Down
DROP INDEX idx_points_lots_status;
