-- +goose Up
-- Orders posted by a shop or POS. uk_points_orders_external makes the same
-- external id have one effect. points is what the order earned (on hold or
-- available), points_reversed what refunds took back; earn_detail explains
-- the computation (JSON) and rule_version names the rules used.
-- idx_points_orders_member serves the tier window sums (spend since a date)
-- and re-deriving the member's purchase facts.
CREATE TABLE points_orders (
  id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id     BIGINT UNSIGNED NOT NULL,
  member_id       BIGINT UNSIGNED NOT NULL,
  external_id     VARCHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  amount_fen      BIGINT          NOT NULL,
  refunded_fen    BIGINT          NOT NULL DEFAULT 0,
  points          BIGINT          NOT NULL,
  points_reversed BIGINT          NOT NULL DEFAULT 0,
  lot_id          BIGINT UNSIGNED NULL,
  ledger_id       BIGINT UNSIGNED NULL,
  rule_version    INT UNSIGNED    NOT NULL,
  earn_detail     TEXT            NOT NULL,
  campaign_id     BIGINT UNSIGNED NULL,
  items           MEDIUMTEXT      NULL,
  ordered_at      DATETIME(3)     NOT NULL,
  created_at      DATETIME(3)     NOT NULL,
  updated_at      DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_points_orders_external (merchant_id, external_id),
  KEY idx_points_orders_member (merchant_id, member_id, ordered_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE points_orders;
