-- +goose Up
-- The merchant's thresholds for computed attributes: buying cadence (sets
-- the lifecycle's at-risk and churn times) and the value pyramid's shares.
ALTER TABLE merchants ADD COLUMN buying_cadence TEXT NOT NULL DEFAULT 'medium';
ALTER TABLE merchants ADD COLUMN platinum_pct INTEGER NOT NULL DEFAULT 5;
ALTER TABLE merchants ADD COLUMN gold_pct INTEGER NOT NULL DEFAULT 15;

-- +goose Down
ALTER TABLE merchants DROP COLUMN gold_pct;
ALTER TABLE merchants DROP COLUMN platinum_pct;
ALTER TABLE merchants DROP COLUMN buying_cadence;
