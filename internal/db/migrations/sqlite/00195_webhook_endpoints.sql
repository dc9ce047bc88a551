-- +goose Up
-- A merchant's webhook endpoints (see the MySQL file).
CREATE TABLE IF NOT EXISTS webhook_endpoints (
  id            INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id   INTEGER NOT NULL,
  url           TEXT NOT NULL,
  description   TEXT NOT NULL DEFAULT '',
  events        TEXT NOT NULL,
  secret        TEXT NOT NULL,
  enabled       INTEGER NOT NULL DEFAULT 1,
  created_at    DATETIME NOT NULL,
  updated_at    DATETIME NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_webhook_endpoints_merchant ON webhook_endpoints (merchant_id, id);

-- +goose Down
DROP TABLE IF EXISTS webhook_endpoints;
