-- +goose Up
-- The merchant's thresholds for computed attributes: buying cadence (sets
-- the lifecycle's at-risk and churn times) and the value pyramid's shares.
ALTER TABLE merchants
  ADD COLUMN buying_cadence VARCHAR(8)       CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT 'medium',
  ADD COLUMN platinum_pct   TINYINT UNSIGNED NOT NULL DEFAULT 5,
  ADD COLUMN gold_pct       TINYINT UNSIGNED NOT NULL DEFAULT 15;

-- +goose Down
ALTER TABLE merchants DROP COLUMN gold_pct, DROP COLUMN platinum_pct, DROP COLUMN buying_cadence;
