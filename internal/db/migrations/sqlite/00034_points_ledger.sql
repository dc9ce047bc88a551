-- +goose Up
-- The points ledger: one immutable row per change of a member's points.
-- points is the signed change of the available balance, pending that of the
-- pending balance; balance is the available balance after the entry.
-- uk_points_ledger_key makes every business operation's idempotency key win
-- once. idx_points_ledger_member serves a member's history and covers
-- reconciliation's sums; idx_points_ledger_time the liability report.
CREATE TABLE points_ledger (
  id              INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id     INTEGER NOT NULL,
  member_id       INTEGER NOT NULL,
  kind            TEXT NOT NULL,
  points          INTEGER NOT NULL,
  pending         INTEGER NOT NULL DEFAULT 0,
  balance         INTEGER NOT NULL,
  reason          TEXT NOT NULL DEFAULT '',
  ref_type        TEXT NOT NULL DEFAULT '',
  ref_id          TEXT NOT NULL DEFAULT '',
  rule_version    INTEGER NOT NULL DEFAULT 0,
  idempotency_key TEXT NOT NULL,
  expires_at      DATETIME NULL,
  created_at      DATETIME NOT NULL
);
CREATE UNIQUE INDEX uk_points_ledger_key ON points_ledger (merchant_id, idempotency_key);
CREATE INDEX idx_points_ledger_member ON points_ledger (merchant_id, member_id, id, points, pending);
CREATE INDEX idx_points_ledger_time ON points_ledger (merchant_id, created_at);

-- +goose Down
DROP TABLE points_ledger;
