-- +goose Up
-- Who changed what through the admin API. idx_audit_log_merchant serves the
-- newest-first listing (keyset on id); idx_audit_log_action and
-- idx_audit_log_actor serve its filters. Rows are never updated.
CREATE TABLE audit_log (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id BIGINT UNSIGNED NOT NULL,
  actor_type  VARCHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  actor_id    BIGINT UNSIGNED NOT NULL DEFAULT 0,
  actor_name  VARCHAR(64)     NOT NULL DEFAULT '',
  action      VARCHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  target_type VARCHAR(32)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  target_ids  MEDIUMTEXT      NOT NULL,
  before_json MEDIUMTEXT      NOT NULL,
  after_json  MEDIUMTEXT      NOT NULL,
  request_id  VARCHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  client_ip   VARCHAR(45)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  created_at  DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  KEY idx_audit_log_merchant (merchant_id, id),
  KEY idx_audit_log_action (merchant_id, action, id),
  KEY idx_audit_log_actor (merchant_id, actor_type, actor_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE audit_log;
