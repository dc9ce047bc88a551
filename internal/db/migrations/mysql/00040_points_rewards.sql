-- +goose Up
-- The rewards catalogue. kind: gift, coupon (a code is issued per
-- redemption) or points_cash (points plus cash_fen paid at the till).
-- stock_left NULL means unlimited; a limited reward's redemption decrements
-- it with a conditional UPDATE (stock_left > 0), so concurrent redemptions
-- cannot oversell. per_member_limit 0 means none. deleted_at hides a reward
-- while its redemptions keep pointing at it.
CREATE TABLE points_rewards (
  id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id      BIGINT UNSIGNED NOT NULL,
  name             VARCHAR(64)     NOT NULL,
  description      VARCHAR(500)    NOT NULL DEFAULT '',
  kind             VARCHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  points_cost      BIGINT          NOT NULL,
  cash_fen         BIGINT          NOT NULL DEFAULT 0,
  stock_total      BIGINT          NULL,
  stock_left       BIGINT          NULL,
  per_member_limit INT             NOT NULL DEFAULT 0,
  valid_from       DATETIME(3)     NULL,
  valid_until      DATETIME(3)     NULL,
  active           TINYINT(1)      NOT NULL DEFAULT 1,
  created_at       DATETIME(3)     NOT NULL,
  updated_at       DATETIME(3)     NOT NULL,
  deleted_at       DATETIME(3)     NULL,
  PRIMARY KEY (id),
  KEY idx_points_rewards_merchant (merchant_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE points_rewards;
