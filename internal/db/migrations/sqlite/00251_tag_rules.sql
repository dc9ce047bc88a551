-- +goose Up
-- Auto-tagging (see the MySQL file).
CREATE TABLE tag_rules (
  id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id INTEGER NOT NULL,
  tag_id      INTEGER NOT NULL,
  rule        TEXT NOT NULL,
  enabled     BOOLEAN NOT NULL DEFAULT 1,
  created_by  INTEGER NOT NULL DEFAULT 0,
  created_at  DATETIME NOT NULL,
  updated_at  DATETIME NOT NULL,
  deleted_at  DATETIME NULL
);
CREATE INDEX idx_tag_rules_merchant ON tag_rules (merchant_id, id);
CREATE INDEX idx_tag_rules_tag ON tag_rules (merchant_id, tag_id);

CREATE TABLE member_tag_events (
  id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id INTEGER NOT NULL,
  member_id   INTEGER NOT NULL,
  tag_id      INTEGER NOT NULL,
  rule_id     INTEGER NOT NULL,
  action      TEXT NOT NULL,
  cause       TEXT NOT NULL,
  occurred_at DATETIME NOT NULL
);
CREATE INDEX idx_member_tag_events_member ON member_tag_events (merchant_id, member_id, id);

CREATE TABLE member_tag_pending (
  merchant_id INTEGER NOT NULL,
  member_id   INTEGER NOT NULL,
  marked_at   DATETIME NOT NULL,
  version     INTEGER NOT NULL DEFAULT 1,
  PRIMARY KEY (merchant_id, member_id)
);

-- +goose Down
DROP TABLE member_tag_pending;
DROP TABLE member_tag_events;
DROP TABLE tag_rules;
