-- +goose Up
-- Which member holds which tag. The primary key (merchant_id, tag_id,
-- member_id) makes an assignment unique (bulk assignment is idempotent) and
-- drives the member list's tag filter: one tag's members in member_id order,
-- the same order as the list's keyset. idx_member_tags_member gives one
-- member's tags (detail, list pages, erasure, merges).
CREATE TABLE member_tags (
  merchant_id BIGINT UNSIGNED NOT NULL,
  tag_id      BIGINT UNSIGNED NOT NULL,
  member_id   BIGINT UNSIGNED NOT NULL,
  created_at  DATETIME(3)     NOT NULL,
  PRIMARY KEY (merchant_id, tag_id, member_id),
  KEY idx_member_tags_member (merchant_id, member_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE member_tags;
