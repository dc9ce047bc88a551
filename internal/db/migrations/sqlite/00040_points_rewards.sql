-- +goose Up
-- The rewards catalogue (see the MySQL migration).
CREATE TABLE points_rewards (
  id               INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id      INTEGER NOT NULL,
  name             TEXT NOT NULL,
  description      TEXT NOT NULL DEFAULT '',
  kind             TEXT NOT NULL,
  points_cost      INTEGER NOT NULL,
  cash_fen         INTEGER NOT NULL DEFAULT 0,
  stock_total      INTEGER NULL,
  stock_left       INTEGER NULL,
  per_member_limit INTEGER NOT NULL DEFAULT 0,
  valid_from       DATETIME NULL,
  valid_until      DATETIME NULL,
  active           INTEGER NOT NULL DEFAULT 1,
  created_at       DATETIME NOT NULL,
  updated_at       DATETIME NOT NULL,
  deleted_at       DATETIME NULL
);
CREATE INDEX idx_points_rewards_merchant ON points_rewards (merchant_id, id);

-- +goose Down
DROP TABLE points_rewards;
