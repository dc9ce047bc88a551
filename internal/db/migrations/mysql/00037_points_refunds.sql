-- +goose Up
-- Refunds of orders, full or partial; uk_points_refunds makes a refund id
-- have one effect per order. points_reversed is what the refund took back
-- from the available balance, pending_cancelled what it took from points
-- still on hold.
CREATE TABLE points_refunds (
  id                BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id       BIGINT UNSIGNED NOT NULL,
  order_id          BIGINT UNSIGNED NOT NULL,
  member_id         BIGINT UNSIGNED NOT NULL,
  refund_id         VARCHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  amount_fen        BIGINT          NOT NULL,
  points_reversed   BIGINT          NOT NULL,
  pending_cancelled BIGINT          NOT NULL,
  ledger_id         BIGINT UNSIGNED NULL,
  reason            VARCHAR(255)    NOT NULL DEFAULT '',
  created_at        DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_points_refunds (merchant_id, order_id, refund_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE points_refunds;
