-- +goose Up
-- Member codes (the rotating code a member shows at the till) are signed,
-- not stored; what is stored is each code's use on an order, so a code
-- counts for one order only (uk_member_code_uses_code: a second order with
-- the same code loses the insert; the same order posted again finds its
-- own row). idx_member_code_uses_expiry serves housekeeping: a use matters
-- only while its code could still be accepted.
CREATE TABLE IF NOT EXISTS member_code_uses (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id  BIGINT UNSIGNED NOT NULL,
  code         VARCHAR(48)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  member_id    BIGINT UNSIGNED NOT NULL,
  external_id  VARCHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  expires_at   DATETIME(3)     NOT NULL,
  created_at   DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_member_code_uses_code (merchant_id, code),
  KEY idx_member_code_uses_expiry (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE IF EXISTS member_code_uses;
