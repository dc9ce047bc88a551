-- +goose Up
-- The targets of each audit entry, one row each, so "what happened to
-- member 42" is an index range (a bulk change can name hundreds).
CREATE TABLE audit_log_targets (
  merchant_id INTEGER NOT NULL,
  target_type TEXT NOT NULL,
  target_id   INTEGER NOT NULL,
  audit_id    INTEGER NOT NULL,
  PRIMARY KEY (merchant_id, target_type, target_id, audit_id)
);

-- +goose Down
DROP TABLE audit_log_targets;
