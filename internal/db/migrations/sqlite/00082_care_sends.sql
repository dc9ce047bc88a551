-- +goose Up
-- Every care message decided, at most one per (rule, member, occurrence):
-- uk_care_sends is what makes a rule fire once (see the MySQL file).
CREATE TABLE care_sends (
  id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
  merchant_id INTEGER NOT NULL,
  rule_id     INTEGER NOT NULL,
  member_id   INTEGER NOT NULL,
  occurrence  TEXT NOT NULL,
  local_date  TEXT NOT NULL,
  campaign_id INTEGER NOT NULL,
  batch       TEXT NOT NULL,
  created_at  DATETIME NOT NULL
);
CREATE UNIQUE INDEX uk_care_sends ON care_sends (merchant_id, rule_id, member_id, occurrence);
CREATE INDEX idx_care_sends_rule ON care_sends (merchant_id, rule_id, id);
CREATE INDEX idx_care_sends_batch ON care_sends (merchant_id, batch);

-- +goose Down
DROP TABLE care_sends;
