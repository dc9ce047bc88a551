-- +goose Up
-- Saved segments: a rule (member/segment JSON) with its last count and
-- when it was taken. Names are unique per merchant.
CREATE TABLE segments (
  id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id  INTEGER NOT NULL,
  name         TEXT NOT NULL COLLATE NOCASE,
  description  TEXT NOT NULL DEFAULT '',
  rule         TEXT NOT NULL,
  cached_count INTEGER NULL,
  counted_at   DATETIME NULL,
  created_by   INTEGER NOT NULL DEFAULT 0,
  created_at   DATETIME NOT NULL,
  updated_at   DATETIME NOT NULL
);
CREATE UNIQUE INDEX uk_segments_name ON segments (merchant_id, name);
CREATE INDEX idx_segments_merchant ON segments (merchant_id, id);

-- +goose Down
DROP TABLE segments;
