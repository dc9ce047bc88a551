-- +goose Up
-- Which member holds which tag. The primary key (merchant_id, tag_id,
-- member_id) makes an assignment unique (bulk assignment is idempotent) and
-- drives the member list's tag filter: one tag's members in member_id order,
-- the same order as the list's keyset. idx_member_tags_member gives one
-- member's tags (detail, list pages, erasure, merges).
CREATE TABLE member_tags (
  merchant_id INTEGER NOT NULL,
  tag_id      INTEGER NOT NULL,
  member_id   INTEGER NOT NULL,
  created_at  DATETIME NOT NULL,
  PRIMARY KEY (merchant_id, tag_id, member_id)
) WITHOUT ROWID;
CREATE INDEX idx_member_tags_member ON member_tags (merchant_id, member_id);

-- +goose Down
DROP TABLE member_tags;
