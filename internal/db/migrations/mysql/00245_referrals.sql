-- +goose Up
-- Referral programme (referral/). referral_settings: the merchant's rewards
-- (points for the referrer and for the referee; 0 = off).
CREATE TABLE IF NOT EXISTS referral_settings (
  merchant_id     BIGINT UNSIGNED NOT NULL,
  referrer_points BIGINT          NOT NULL DEFAULT 0,
  referee_points  BIGINT          NOT NULL DEFAULT 0,
  updated_at      DATETIME(3)     NOT NULL,
  PRIMARY KEY (merchant_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- A member's invitation: the code of their share link and the scene of
-- their QR code (a temporary official-account code, renewed when it nears
-- expiry). One per member (uk_referral_codes_member), codes unique per
-- merchant (uk_referral_codes_code: a follow's scene or a login's ref finds
-- the referrer through it).
CREATE TABLE IF NOT EXISTS referral_codes (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id   BIGINT UNSIGNED NOT NULL,
  member_id     BIGINT UNSIGNED NOT NULL,
  code          VARCHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  qr_ticket     VARCHAR(255)    NULL,
  qr_url        VARCHAR(255)    NULL,
  qr_image_url  VARCHAR(512)    NULL,
  qr_expires_at DATETIME(3)     NULL,
  created_at    DATETIME(3)     NOT NULL,
  updated_at    DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_referral_codes_code (merchant_id, code),
  UNIQUE KEY uk_referral_codes_member (merchant_id, member_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per referred member: first touch wins because a member can be
-- the referee of one referral only (uk_referrals_referee), whichever
-- transaction inserts first. idx_referrals_referrer serves a member's
-- counts (segments, the member API, top referrers); idx_referrals_created
-- the report's period.
CREATE TABLE IF NOT EXISTS referrals (
  id                BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id       BIGINT UNSIGNED NOT NULL,
  referrer_id       BIGINT UNSIGNED NOT NULL,
  referee_id        BIGINT UNSIGNED NOT NULL,
  code              VARCHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  source            VARCHAR(16)     NOT NULL,
  status            VARCHAR(16)     NOT NULL,
  reason            VARCHAR(32)     NULL,
  order_external_id VARCHAR(64)     NULL,
  referrer_points   BIGINT          NOT NULL DEFAULT 0,
  referee_points    BIGINT          NOT NULL DEFAULT 0,
  created_at        DATETIME(3)     NOT NULL,
  converted_at      DATETIME(3)     NULL,
  reversed_at       DATETIME(3)     NULL,
  updated_at        DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_referrals_referee (merchant_id, referee_id),
  KEY idx_referrals_referrer (merchant_id, referrer_id, status),
  KEY idx_referrals_created (merchant_id, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The identities (unionid, phone) that a referral has counted for, as
-- SHA-256 digests: a person counts once however many member records they
-- make, and an erased member's digest still blocks a second reward without
-- keeping the identity itself.
CREATE TABLE IF NOT EXISTS referral_identities (
  merchant_id BIGINT UNSIGNED NOT NULL,
  kind        VARCHAR(8)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  digest      CHAR(64)        CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  referral_id BIGINT UNSIGNED NOT NULL,
  created_at  DATETIME(3)     NOT NULL,
  PRIMARY KEY (merchant_id, kind, digest)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE IF EXISTS referral_identities;
DROP TABLE IF EXISTS referrals;
DROP TABLE IF EXISTS referral_codes;
DROP TABLE IF EXISTS referral_settings;
