-- +goose Up
-- Coupons and their states; see the MySQL migration.
CREATE TABLE IF NOT EXISTS points_coupons (
  id                INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id       INTEGER NOT NULL,
  member_id         INTEGER NOT NULL,
  redemption_id     INTEGER NOT NULL,
  reward_id         INTEGER NOT NULL,
  reward_name       TEXT NOT NULL,
  code              TEXT NOT NULL,
  status            TEXT NOT NULL,
  expires_at        DATETIME NOT NULL,
  used_at           DATETIME NULL,
  used_store        TEXT NOT NULL DEFAULT '',
  used_by           TEXT NOT NULL DEFAULT '',
  used_staff_id     INTEGER NULL,
  used_api_key_id   INTEGER NULL,
  verify_request_id TEXT NULL,
  created_at        DATETIME NOT NULL,
  updated_at        DATETIME NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS uk_points_coupons_code ON points_coupons (merchant_id, code);
CREATE UNIQUE INDEX IF NOT EXISTS uk_points_coupons_redemption ON points_coupons (merchant_id, redemption_id);
CREATE INDEX IF NOT EXISTS idx_points_coupons_member ON points_coupons (merchant_id, member_id, id);
CREATE INDEX IF NOT EXISTS idx_points_coupons_due ON points_coupons (status, expires_at);
CREATE INDEX IF NOT EXISTS idx_points_coupons_expiring ON points_coupons (merchant_id, status, expires_at);

-- +goose Down
DROP TABLE IF EXISTS points_coupons;
