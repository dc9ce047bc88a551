-- +goose Up
-- Redemptions of rewards. uk_points_redemptions_key (redeem:<member>:<client
-- request id>) makes a retried redemption return the first result;
-- uk_points_redemptions_code keeps issued coupon codes unique per merchant.
-- idx_points_redemptions_member counts a member's redemptions of a reward
-- for the per-member limit; idx_points_redemptions_merchant lists them.
CREATE TABLE points_redemptions (
  id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id      BIGINT UNSIGNED NOT NULL,
  member_id        BIGINT UNSIGNED NOT NULL,
  reward_id        BIGINT UNSIGNED NOT NULL,
  reward_name      VARCHAR(64)     NOT NULL,
  idempotency_key  VARCHAR(160)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  points           BIGINT          NOT NULL,
  cash_fen         BIGINT          NOT NULL DEFAULT 0,
  code             VARCHAR(32)     CHARACTER SET ascii COLLATE ascii_bin NULL,
  status           VARCHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  ledger_id        BIGINT UNSIGNED NOT NULL,
  cancel_ledger_id BIGINT UNSIGNED NULL,
  cancel_reason    VARCHAR(255)    NOT NULL DEFAULT '',
  created_at       DATETIME(3)     NOT NULL,
  cancelled_at     DATETIME(3)     NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_points_redemptions_key (merchant_id, idempotency_key),
  UNIQUE KEY uk_points_redemptions_code (merchant_id, code),
  KEY idx_points_redemptions_member (merchant_id, member_id, reward_id, status),
  KEY idx_points_redemptions_merchant (merchant_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE points_redemptions;
