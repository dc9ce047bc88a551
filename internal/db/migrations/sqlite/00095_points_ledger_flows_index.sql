-- +goose Up
-- The liability report's monthly flows (points/report.go); see the MySQL
-- migration.
CREATE INDEX idx_points_ledger_flows ON points_ledger (merchant_id, created_at, kind, points, pending);

-- +goose Down
DROP INDEX idx_points_ledger_flows;
