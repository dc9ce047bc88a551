-- +goose Up
-- Saved segments: a rule (member/segment JSON) with its last count and
-- when it was taken. Names are unique per merchant.
CREATE TABLE segments (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  merchant_id  BIGINT UNSIGNED NOT NULL,
  name         VARCHAR(64)     NOT NULL,
  description  VARCHAR(500)    NOT NULL DEFAULT '',
  rule         TEXT            NOT NULL,
  cached_count BIGINT          NULL,
  counted_at   DATETIME(3)     NULL,
  created_by   BIGINT UNSIGNED NOT NULL DEFAULT 0,
  created_at   DATETIME(3)     NOT NULL,
  updated_at   DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_segments_name (merchant_id, name),
  KEY idx_segments_merchant (merchant_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE segments;
