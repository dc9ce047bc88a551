-- +goose Up
-- idx_points_ledger_flows (merchant_id, created_at, kind, points, pending)
-- serves everything idx_points_ledger_time (merchant_id, created_at) did.
DROP INDEX idx_points_ledger_time;

-- +goose Down
CREATE INDEX idx_points_ledger_time ON points_ledger (merchant_id, created_at);
