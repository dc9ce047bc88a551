-- +goose Up
-- Coupons: a redeemed reward of kind coupon, with the code the member
-- shows at the till and its state (points/coupons.go owns this table):
-- issued, then used (verified by staff or a POS, once), expired (past
-- expires_at) or cancelled (its redemption was cancelled). Every state
-- change is one guarded UPDATE ... WHERE status = 'issued', so of any
-- number of concurrent verifications one wins.
-- uk_points_coupons_code finds a code at the till; uk_points_coupons_redemption
-- keeps one coupon per redemption; idx_points_coupons_member lists a
-- member's coupons; idx_points_coupons_due finds issued coupons whose
-- expiry has come (all merchants, the sweep); idx_points_coupons_expiring
-- a merchant's coupons expiring soon (the care reminders).
-- verify_request_id is the verifying client's request id: the same
-- request repeated answers the first result.
CREATE TABLE IF NOT EXISTS points_coupons (
  id                BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id       BIGINT UNSIGNED NOT NULL,
  member_id         BIGINT UNSIGNED NOT NULL,
  redemption_id     BIGINT UNSIGNED NOT NULL,
  reward_id         BIGINT UNSIGNED NOT NULL,
  reward_name       VARCHAR(64)     NOT NULL,
  code              VARCHAR(32)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  status            VARCHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  expires_at        DATETIME(3)     NOT NULL,
  used_at           DATETIME(3)     NULL,
  used_store        VARCHAR(64)     NOT NULL DEFAULT '',
  used_by           VARCHAR(64)     NOT NULL DEFAULT '',
  used_staff_id     BIGINT UNSIGNED NULL,
  used_api_key_id   BIGINT UNSIGNED NULL,
  verify_request_id VARCHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NULL,
  created_at        DATETIME(3)     NOT NULL,
  updated_at        DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_points_coupons_code (merchant_id, code),
  UNIQUE KEY uk_points_coupons_redemption (merchant_id, redemption_id),
  KEY idx_points_coupons_member (merchant_id, member_id, id),
  KEY idx_points_coupons_due (status, expires_at),
  KEY idx_points_coupons_expiring (merchant_id, status, expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE IF EXISTS points_coupons;
