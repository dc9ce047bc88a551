-- +goose Up
-- The delivery state machine of webhook/deliveries.go (see the MySQL file).
CREATE TABLE IF NOT EXISTS webhook_deliveries (
  id              INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id     INTEGER NOT NULL,
  endpoint_id     INTEGER NOT NULL,
  event_id        INTEGER NOT NULL,
  status          TEXT NOT NULL,
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at DATETIME NOT NULL,
  give_up_at      DATETIME NOT NULL,
  lease_owner     TEXT NULL,
  lease_until     DATETIME NULL,
  last_status     INTEGER NOT NULL DEFAULT 0,
  last_error      TEXT NOT NULL DEFAULT '',
  delivered_at    DATETIME NULL,
  created_at      DATETIME NOT NULL,
  updated_at      DATETIME NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS uk_webhook_deliveries ON webhook_deliveries (endpoint_id, event_id);
CREATE INDEX IF NOT EXISTS idx_webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at, endpoint_id);
CREATE INDEX IF NOT EXISTS idx_webhook_deliveries_claim ON webhook_deliveries (endpoint_id, status, next_attempt_at, id);
CREATE INDEX IF NOT EXISTS idx_webhook_deliveries_list ON webhook_deliveries (merchant_id, status, id);

-- +goose Down
DROP TABLE IF EXISTS webhook_deliveries;
