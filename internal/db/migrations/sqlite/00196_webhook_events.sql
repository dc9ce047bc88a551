-- +goose Up
-- The outbox (see the MySQL file).
CREATE TABLE IF NOT EXISTS webhook_events (
  id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id INTEGER NOT NULL,
  type        TEXT NOT NULL,
  data        TEXT NOT NULL,
  created_at  DATETIME NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_webhook_events_merchant ON webhook_events (merchant_id, id);

-- +goose Down
DROP TABLE IF EXISTS webhook_events;
