-- +goose Up
-- Orders posted by a shop or POS; uk_points_orders_external makes the same
-- external id have one effect (see the MySQL migration).
CREATE TABLE points_orders (
  id              INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id     INTEGER NOT NULL,
  member_id       INTEGER NOT NULL,
  external_id     TEXT NOT NULL,
  amount_fen      INTEGER NOT NULL,
  refunded_fen    INTEGER NOT NULL DEFAULT 0,
  points          INTEGER NOT NULL,
  points_reversed INTEGER NOT NULL DEFAULT 0,
  lot_id          INTEGER NULL,
  ledger_id       INTEGER NULL,
  rule_version    INTEGER NOT NULL,
  earn_detail     TEXT NOT NULL,
  campaign_id     INTEGER NULL,
  items           TEXT NULL,
  ordered_at      DATETIME NOT NULL,
  created_at      DATETIME NOT NULL,
  updated_at      DATETIME NOT NULL
);
CREATE UNIQUE INDEX uk_points_orders_external ON points_orders (merchant_id, external_id);
CREATE INDEX idx_points_orders_member ON points_orders (merchant_id, member_id, ordered_at);

-- +goose Down
DROP TABLE points_orders;
