-- +goose Up
-- Tags staff put on members. uk_tags_name keeps names unique per merchant
-- (case-insensitively: the column's collation); it also serves the
-- by-name listing.
CREATE TABLE tags (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id BIGINT UNSIGNED NOT NULL,
  name        VARCHAR(32)     NOT NULL,
  color       VARCHAR(7)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  created_at  DATETIME(3)     NOT NULL,
  updated_at  DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_tags_name (merchant_id, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE tags;
