-- +goose Up
-- Referral programme (referral/); see the MySQL migration for the why of
-- each table and index.
CREATE TABLE IF NOT EXISTS referral_settings (
  merchant_id     INTEGER NOT NULL PRIMARY KEY,
  referrer_points INTEGER NOT NULL DEFAULT 0,
  referee_points  INTEGER NOT NULL DEFAULT 0,
  updated_at      DATETIME NOT NULL
);

CREATE TABLE IF NOT EXISTS referral_codes (
  id            INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id   INTEGER NOT NULL,
  member_id     INTEGER NOT NULL,
  code          TEXT NOT NULL,
  qr_ticket     TEXT NULL,
  qr_url        TEXT NULL,
  qr_image_url  TEXT NULL,
  qr_expires_at DATETIME NULL,
  created_at    DATETIME NOT NULL,
  updated_at    DATETIME NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS uk_referral_codes_code ON referral_codes (merchant_id, code);
CREATE UNIQUE INDEX IF NOT EXISTS uk_referral_codes_member ON referral_codes (merchant_id, member_id);

CREATE TABLE IF NOT EXISTS referrals (
  id                INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id       INTEGER NOT NULL,
  referrer_id       INTEGER NOT NULL,
  referee_id        INTEGER NOT NULL,
  code              TEXT NOT NULL,
  source            TEXT NOT NULL,
  status            TEXT NOT NULL,
  reason            TEXT NULL,
  order_external_id TEXT NULL,
  referrer_points   INTEGER NOT NULL DEFAULT 0,
  referee_points    INTEGER NOT NULL DEFAULT 0,
  created_at        DATETIME NOT NULL,
  converted_at      DATETIME NULL,
  reversed_at       DATETIME NULL,
  updated_at        DATETIME NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS uk_referrals_referee ON referrals (merchant_id, referee_id);
CREATE INDEX IF NOT EXISTS idx_referrals_referrer ON referrals (merchant_id, referrer_id, status);
CREATE INDEX IF NOT EXISTS idx_referrals_created ON referrals (merchant_id, created_at);

CREATE TABLE IF NOT EXISTS referral_identities (
  merchant_id INTEGER NOT NULL,
  kind        TEXT NOT NULL,
  digest      TEXT NOT NULL,
  referral_id INTEGER NOT NULL,
  created_at  DATETIME NOT NULL,
  PRIMARY KEY (merchant_id, kind, digest)
);

-- +goose Down
DROP TABLE IF EXISTS referral_identities;
DROP TABLE IF EXISTS referrals;
DROP TABLE IF EXISTS referral_codes;
DROP TABLE IF EXISTS referral_settings;
