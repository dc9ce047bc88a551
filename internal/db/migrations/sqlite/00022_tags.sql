-- +goose Up
-- Tags staff put on members. uk_tags_name keeps names unique per merchant
-- (case-insensitively for ASCII, like MySQL's collation); it also serves the
-- by-name listing.
CREATE TABLE tags (
  id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id INTEGER NOT NULL,
  name        TEXT NOT NULL COLLATE NOCASE,
  color       TEXT NOT NULL DEFAULT '',
  created_at  DATETIME NOT NULL,
  updated_at  DATETIME NOT NULL
);
CREATE UNIQUE INDEX uk_tags_name ON tags (merchant_id, name);

-- +goose Down
DROP TABLE tags;
