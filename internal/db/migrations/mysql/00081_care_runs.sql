-- +goose Up
-- One campaign per care rule and merchant-local date: the primary key lets
-- schedulers on any number of instances agree on the day's campaign (the
-- second to insert gets a duplicate and reuses the first one's).
-- idx_care_runs_date finds a merchant's recent care campaigns.
CREATE TABLE care_runs (
  merchant_id BIGINT UNSIGNED NOT NULL,
  rule_id     BIGINT UNSIGNED NOT NULL,
  local_date  CHAR(10)        CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  campaign_id BIGINT UNSIGNED NOT NULL,
  created_at  DATETIME(3)     NOT NULL,
  PRIMARY KEY (merchant_id, rule_id, local_date),
  KEY idx_care_runs_date (merchant_id, local_date)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE care_runs;
