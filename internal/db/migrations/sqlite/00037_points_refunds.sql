-- +goose Up
-- Refunds of orders, full or partial; uk_points_refunds makes a refund id
-- have one effect per order.
CREATE TABLE points_refunds (
  id                INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id       INTEGER NOT NULL,
  order_id          INTEGER NOT NULL,
  member_id         INTEGER NOT NULL,
  refund_id         TEXT NOT NULL,
  amount_fen        INTEGER NOT NULL,
  points_reversed   INTEGER NOT NULL,
  pending_cancelled INTEGER NOT NULL,
  ledger_id         INTEGER NULL,
  reason            TEXT NOT NULL DEFAULT '',
  created_at        DATETIME NOT NULL
);
CREATE UNIQUE INDEX uk_points_refunds ON points_refunds (merchant_id, order_id, refund_id);

-- +goose Down
DROP TABLE points_refunds;
