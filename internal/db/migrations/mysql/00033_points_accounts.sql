-- +goose Up
-- One row per member with points: the materialised balance (available,
-- pending, debt), updated in the same transaction as every ledger entry and
-- re-derivable from the entries (loyalty points reconcile). The row is also
-- the member's serialisation point: every points transaction locks it
-- (FOR UPDATE) before touching the member's entries and lots. Tier state,
-- the daily-cap counter, the check-in streak and the one-off bonuses
-- already given live here too. idx_points_accounts_review finds the tiers
-- due for review across merchants.
CREATE TABLE points_accounts (
  merchant_id      BIGINT UNSIGNED NOT NULL,
  member_id        BIGINT UNSIGNED NOT NULL,
  available        BIGINT          NOT NULL DEFAULT 0,
  pending          BIGINT          NOT NULL DEFAULT 0,
  debt             BIGINT          NOT NULL DEFAULT 0,
  tier_id          BIGINT UNSIGNED NULL,
  tier_since       DATETIME(3)     NULL,
  tier_review_at   DATETIME(3)     NULL,
  tier_grace_until DATETIME(3)     NULL,
  cap_day          INT             NOT NULL DEFAULT 0,
  cap_earned       BIGINT          NOT NULL DEFAULT 0,
  streak_day       INT             NOT NULL DEFAULT 0,
  streak           INT             NOT NULL DEFAULT 0,
  bonus_flags      INT             NOT NULL DEFAULT 0,
  created_at       DATETIME(3)     NOT NULL,
  updated_at       DATETIME(3)     NOT NULL,
  PRIMARY KEY (merchant_id, member_id),
  KEY idx_points_accounts_review (tier_review_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE points_accounts;
