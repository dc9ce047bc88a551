-- +goose Up
-- The targets of each audit entry, one row each, so "what happened to
-- member 42" is an index range (a bulk change can name hundreds).
CREATE TABLE audit_log_targets (
  merchant_id BIGINT UNSIGNED NOT NULL,
  target_type VARCHAR(32)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  target_id   BIGINT UNSIGNED NOT NULL,
  audit_id    BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (merchant_id, target_type, target_id, audit_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE audit_log_targets;
