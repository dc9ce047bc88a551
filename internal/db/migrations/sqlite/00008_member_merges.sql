-- +goose Up
-- Members merged into another when a unionid showed they were one person.
CREATE TABLE member_merges (
  id             INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id    INTEGER NOT NULL,
  from_member_id INTEGER NOT NULL,
  into_member_id INTEGER NOT NULL,
  reason         TEXT NOT NULL,
  created_at     DATETIME NOT NULL
);
CREATE UNIQUE INDEX uk_member_merges_from ON member_merges (merchant_id, from_member_id);
CREATE INDEX idx_member_merges_into ON member_merges (merchant_id, into_member_id);

-- +goose Down
DROP TABLE member_merges;
