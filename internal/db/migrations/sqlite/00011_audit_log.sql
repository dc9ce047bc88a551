-- +goose Up
-- Who changed what through the admin API. idx_audit_log_merchant serves the
-- newest-first listing (keyset on id); idx_audit_log_action and
-- idx_audit_log_actor serve its filters. Rows are never updated.
CREATE TABLE audit_log (
  id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id INTEGER NOT NULL,
  actor_type  TEXT NOT NULL,
  actor_id    INTEGER NOT NULL DEFAULT 0,
  actor_name  TEXT NOT NULL DEFAULT '',
  action      TEXT NOT NULL,
  target_type TEXT NOT NULL DEFAULT '',
  target_ids  TEXT NOT NULL,
  before_json TEXT NOT NULL,
  after_json  TEXT NOT NULL,
  request_id  TEXT NOT NULL DEFAULT '',
  client_ip   TEXT NOT NULL DEFAULT '',
  created_at  DATETIME NOT NULL
);
CREATE INDEX idx_audit_log_merchant ON audit_log (merchant_id, id);
CREATE INDEX idx_audit_log_action ON audit_log (merchant_id, action, id);
CREATE INDEX idx_audit_log_actor ON audit_log (merchant_id, actor_type, actor_id, id);

-- +goose Down
DROP TABLE audit_log;
