-- +goose Up
-- idx_points_ledger_flows (merchant_id, created_at, kind, points, pending)
-- serves everything idx_points_ledger_time (merchant_id, created_at) did.
ALTER TABLE points_ledger DROP INDEX idx_points_ledger_time;

-- +goose Down
ALTER TABLE points_ledger ADD INDEX idx_points_ledger_time (merchant_id, created_at);
