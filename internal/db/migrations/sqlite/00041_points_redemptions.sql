-- +goose Up
-- Redemptions of rewards (see the MySQL migration).
CREATE TABLE points_redemptions (
  id               INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id      INTEGER NOT NULL,
  member_id        INTEGER NOT NULL,
  reward_id        INTEGER NOT NULL,
  reward_name      TEXT NOT NULL,
  idempotency_key  TEXT NOT NULL,
  points           INTEGER NOT NULL,
  cash_fen         INTEGER NOT NULL DEFAULT 0,
  code             TEXT NULL,
  status           TEXT NOT NULL,
  ledger_id        INTEGER NOT NULL,
  cancel_ledger_id INTEGER NULL,
  cancel_reason    TEXT NOT NULL DEFAULT '',
  created_at       DATETIME NOT NULL,
  cancelled_at     DATETIME NULL
);
CREATE UNIQUE INDEX uk_points_redemptions_key ON points_redemptions (merchant_id, idempotency_key);
CREATE UNIQUE INDEX uk_points_redemptions_code ON points_redemptions (merchant_id, code);
CREATE INDEX idx_points_redemptions_member ON points_redemptions (merchant_id, member_id, reward_id, status);
CREATE INDEX idx_points_redemptions_merchant ON points_redemptions (merchant_id, id);

-- +goose Down
DROP TABLE points_redemptions;
