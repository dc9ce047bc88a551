-- +goose Up
-- The points ledger: one immutable row per change of a member's points.
-- points is the signed change of the available balance, pending that of the
-- pending balance (an earn on hold is pending +n, its release points +n and
-- pending -n); balance is the available balance after the entry.
-- uk_points_ledger_key makes every business operation's idempotency key
-- (order:<external id>, refund:<order>:<refund id>, expire:lot:<id>, ...)
-- win once, whichever instance runs it. idx_points_ledger_member serves a
-- member's history (newest first, keyset on id) and carries points and
-- pending so reconciliation sums a range of members from the index alone.
-- idx_points_ledger_time serves the liability report's per-period sums.
CREATE TABLE points_ledger (
  id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id     BIGINT UNSIGNED NOT NULL,
  member_id       BIGINT UNSIGNED NOT NULL,
  kind            VARCHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  points          BIGINT          NOT NULL,
  pending         BIGINT          NOT NULL DEFAULT 0,
  balance         BIGINT          NOT NULL,
  reason          VARCHAR(255)    NOT NULL DEFAULT '',
  ref_type        VARCHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  ref_id          VARCHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  rule_version    INT UNSIGNED    NOT NULL DEFAULT 0,
  idempotency_key VARCHAR(160)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  expires_at      DATETIME(3)     NULL,
  created_at      DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_points_ledger_key (merchant_id, idempotency_key),
  KEY idx_points_ledger_member (merchant_id, member_id, id, points, pending),
  KEY idx_points_ledger_time (merchant_id, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE points_ledger;
