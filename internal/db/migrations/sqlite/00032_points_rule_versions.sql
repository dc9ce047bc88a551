-- +goose Up
-- A merchant's points rules (earn rate, bonuses, check-in, caps, expiry,
-- pending hold, tier basis...) as a JSON document, one row per version.
-- Rows are never changed: the current rules are the highest version, and a
-- ledger entry's rule_version says which rules produced it.
CREATE TABLE points_rule_versions (
  merchant_id INTEGER NOT NULL,
  version     INTEGER NOT NULL,
  body        TEXT NOT NULL,
  created_by  TEXT NOT NULL DEFAULT '',
  created_at  DATETIME NOT NULL,
  PRIMARY KEY (merchant_id, version)
);

-- +goose Down
DROP TABLE points_rule_versions;
