-- +goose Up
-- Lots: the points of each credit, with what is left of them and when they
-- expire (see the MySQL migration for the full description).
CREATE TABLE points_lots (
  id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id  INTEGER NOT NULL,
  member_id    INTEGER NOT NULL,
  ledger_id    INTEGER NOT NULL,
  status       TEXT NOT NULL,
  points       INTEGER NOT NULL,
  remaining    INTEGER NOT NULL,
  available_at DATETIME NULL,
  expires_at   DATETIME NULL,
  created_at   DATETIME NOT NULL,
  updated_at   DATETIME NOT NULL
);
CREATE INDEX idx_points_lots_member ON points_lots (merchant_id, member_id, status, expires_at);
CREATE INDEX idx_points_lots_expiry ON points_lots (status, expires_at);
CREATE INDEX idx_points_lots_release ON points_lots (status, available_at);

-- +goose Down
DROP TABLE points_lots;
