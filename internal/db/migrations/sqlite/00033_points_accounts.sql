-- +goose Up
-- One row per member with points: the materialised balance (available,
-- pending, debt), updated in the same transaction as every ledger entry and
-- re-derivable from the entries (loyalty points reconcile). The row is also
-- the member's serialisation point (SQLite transactions serialise writers).
-- Tier state, the daily-cap counter, the check-in streak and the one-off
-- bonuses already given live here too.
CREATE TABLE points_accounts (
  merchant_id      INTEGER NOT NULL,
  member_id        INTEGER NOT NULL,
  available        INTEGER NOT NULL DEFAULT 0,
  pending          INTEGER NOT NULL DEFAULT 0,
  debt             INTEGER NOT NULL DEFAULT 0,
  tier_id          INTEGER NULL,
  tier_since       DATETIME NULL,
  tier_review_at   DATETIME NULL,
  tier_grace_until DATETIME NULL,
  cap_day          INTEGER NOT NULL DEFAULT 0,
  cap_earned       INTEGER NOT NULL DEFAULT 0,
  streak_day       INTEGER NOT NULL DEFAULT 0,
  streak           INTEGER NOT NULL DEFAULT 0,
  bonus_flags      INTEGER NOT NULL DEFAULT 0,
  created_at       DATETIME NOT NULL,
  updated_at       DATETIME NOT NULL,
  PRIMARY KEY (merchant_id, member_id)
);
CREATE INDEX idx_points_accounts_review ON points_accounts (tier_review_at);

-- +goose Down
DROP TABLE points_accounts;
