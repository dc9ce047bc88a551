-- +goose Up
-- Member codes (the rotating code a member shows at the till) are signed,
-- not stored; what is stored is each code's use on an order, so a code
-- counts for one order only (uk_member_code_uses_code: a second order with
-- the same code loses the insert; the same order posted again finds its
-- own row). idx_member_code_uses_expiry serves housekeeping: a use matters
-- only while its code could still be accepted.
CREATE TABLE IF NOT EXISTS member_code_uses (
  id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id  INTEGER NOT NULL,
  code         TEXT NOT NULL,
  member_id    INTEGER NOT NULL,
  external_id  TEXT NOT NULL,
  expires_at   DATETIME NOT NULL,
  created_at   DATETIME NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS uk_member_code_uses_code ON member_code_uses (merchant_id, code);
CREATE INDEX IF NOT EXISTS idx_member_code_uses_expiry ON member_code_uses (expires_at);

-- +goose Down
DROP TABLE IF EXISTS member_code_uses;
