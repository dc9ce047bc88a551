-- +goose Up
-- Every change of a member's tier, with the qualifying value at the time.
CREATE TABLE points_tier_history (
  id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id  INTEGER NOT NULL,
  member_id    INTEGER NOT NULL,
  from_tier_id INTEGER NULL,
  to_tier_id   INTEGER NULL,
  reason       TEXT NOT NULL,
  qualifying   INTEGER NOT NULL,
  created_at   DATETIME NOT NULL
);
CREATE INDEX idx_points_tier_history_member ON points_tier_history (merchant_id, member_id, id);

-- +goose Down
DROP TABLE points_tier_history;
