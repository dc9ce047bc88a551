-- +goose Up
-- One campaign per care rule and merchant-local date (see the MySQL file).
CREATE TABLE care_runs (
  merchant_id INTEGER NOT NULL,
  rule_id     INTEGER NOT NULL,
  local_date  TEXT NOT NULL,
  campaign_id INTEGER NOT NULL,
  created_at  DATETIME NOT NULL,
  PRIMARY KEY (merchant_id, rule_id, local_date)
);
CREATE INDEX idx_care_runs_date ON care_runs (merchant_id, local_date);

-- +goose Down
DROP TABLE care_runs;
